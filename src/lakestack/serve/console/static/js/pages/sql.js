// SQL: a read-only editor over POST /v1/query (the API's locked-down path decides what may run and
// masks for the viewer's role); results as a table, the same query downloadable as CSV.
import { get, post, postBlob } from "../api.js";
import { clear, dataGrid, empty, errorBox, h, int, loading } from "../dom.js";

export const title = "SQL";
const LAST = "lakestack.sql";
const LIMIT = 1000;

export async function render(view) {
  const editor = h("textarea", { id: "sql-editor", class: "editor", spellcheck: "false", rows: 8,
    placeholder: "SELECT … FROM gold.<dataset> LIMIT 20" });
  editor.value = sessionStorage.getItem(LAST) || (await starter());
  const out = h("div", { id: "sql-result" }, empty("Run a query: Ctrl+Enter."));
  const status = h("span", { class: "muted", id: "sql-status" });
  const run = async () => {
    const sql = editor.value.trim();
    if (!sql) return;
    sessionStorage.setItem(LAST, sql);
    clear(out).appendChild(loading());
    status.textContent = "";
    try {
      const r = await post("/v1/query", { sql, format: "json", limit: LIMIT, offset: 0 });
      status.textContent = `${int(r.rows.length)} rows${r.truncated ? ` (first ${int(LIMIT)}; download CSV for the rest)` : ""} · ${r.elapsed_ms.toFixed(0)} ms`;
      clear(out).appendChild(r.rows.length ? dataGrid(r.columns, r.rows, { id: "sql-table" }) : empty("No rows."));
      out.dataset.rows = String(r.rows.length);
    } catch (err) {
      clear(out).appendChild(errorBox(err));
    }
  };
  const download = async () => {
    const sql = editor.value.trim();
    if (!sql) return;
    try {
      const blob = await postBlob("/v1/query", { sql, format: "csv" });
      const a = h("a", { href: URL.createObjectURL(blob), download: "query.csv" });
      document.body.appendChild(a);
      a.click();
      setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
    } catch (err) {
      clear(out).appendChild(errorBox(err));
    }
  };
  editor.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); }
    if (e.key === "Tab") { e.preventDefault(); editor.setRangeText("  ", editor.selectionStart, editor.selectionEnd, "end"); }
  });
  view.append(
    h("div", { class: "page-head" }, h("h1", null, "SQL"), h("span", { class: "sub" }, "read-only · masked for your role")),
    h("section", { class: "panel" }, editor,
      h("div", { class: "toolbar" },
        h("button", { type: "button", class: "primary", id: "sql-run", onclick: run }, "Run ", h("kbd", null, "Ctrl+Enter")),
        h("button", { type: "button", id: "sql-csv", onclick: download }, "Download CSV"),
        status)),
    h("section", { class: "panel" }, out));
}

// A first query over a dataset the viewer may read (Gold first).
async function starter() {
  try {
    const { datasets } = await get("/v1/datasets");
    const rank = { gold: 0, silver: 1, bronze: 2 };
    const best = [...datasets].sort((a, b) => (rank[a.layer] ?? 3) - (rank[b.layer] ?? 3))[0];
    return best ? `SELECT *\nFROM ${best.name}\nLIMIT 20` : "SELECT 1 AS one";
  } catch (_) {
    return "SELECT 1 AS one";
  }
}
