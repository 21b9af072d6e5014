// Quarantine: a source's rejected rows by reason, each with its raw record, file and line and the
// rule it broke. Replaying is a write, done by the CLI: the console shows the command to run.
import { enc, get } from "../api.js";
import { bars, card, clear, empty, errorBox, h, int, loading, pct, runLink, section, table, when } from "../dom.js";

export const title = "Quarantine";
const PAGE = 100;

export async function render(view, source, params) {
  const o = await get("/v1/overview");
  const sources = (o.quarantine || []).map((q) => q.source);
  const current = source || sources.find((s) => (o.quarantine.find((q) => q.source === s) || {}).quarantined) || sources[0];
  view.append(h("div", { class: "page-head" }, h("h1", null, "Quarantine")),
    h("div", { class: "chips", id: "quarantine-sources" }, (o.quarantine || []).map((q) =>
      h("a", { class: ["chip", q.source === current ? "active" : null], href: `#/quarantine/${enc(q.source)}` },
        `${q.source} · ${int(q.quarantined)} (${pct(q.rate)})`))));
  if (!current) {
    view.append(empty("No sources."));
    return;
  }
  await renderSource(view, current, params.get("reason") || "");
}

async function renderSource(view, source, reason) {
  const first = await get(`/v1/quarantine/${enc(source)}`, { limit: 1 });
  const reasons = first.by_reason || [];
  const body = h("div", { id: "quarantine-rows" });
  const record = h("div", { id: "quarantine-record" }, empty("Select a row to see its raw record and rule."));
  const replay = h("div", { id: "quarantine-replay" });
  let offset = 0;
  const pick = h("select", { id: "quarantine-reason" }, h("option", { value: "" }, "every reason"),
    reasons.map((r) => h("option", { value: r.reason }, `${r.reason} (${int(r.count)})`)));
  pick.value = reason;
  const showReplay = () => {
    const cmd = `lakestack quarantine replay ${shellQuote(source)}${pick.value ? ` --reason ${shellQuote(pick.value)}` : ""}`;
    const code = h("code", { id: "replay-command" }, cmd);
    const copy = h("button", { type: "button", class: "ghost", onclick: () => {
      navigator.clipboard && navigator.clipboard.writeText(cmd).then(() => { copy.textContent = "Copied"; }, () => {});
    } }, "Copy");
    clear(replay).append(h("p", { class: "muted" }, "After fixing the contract, re-validate these rows with the CLI (add --dry-run to preview). The console never writes."),
      h("div", { class: "command" }, code, copy));
  };
  const load = async () => {
    clear(body).appendChild(loading());
    try {
      const r = await get(`/v1/quarantine/${enc(source)}`, { reason: pick.value, limit: PAGE, offset });
      clear(body).append(
        h("div", { class: "toolbar" }, h("span", { class: "muted" }, `${int(r.rows.length ? offset + 1 : 0)}–${int(offset + r.rows.length)} of ${int(r.total)}`),
          h("button", { type: "button", disabled: offset <= 0, onclick: () => { offset = Math.max(0, offset - PAGE); load(); } }, "‹ Prev"),
          h("button", { type: "button", disabled: offset + r.rows.length >= r.total, onclick: () => { offset += PAGE; load(); } }, "Next ›")),
        table([
          { label: "Rule", value: (q) => h("span", { class: "reason" }, q.rule || q.reason), sort: (q) => q.rule || q.reason },
          { label: "Error", value: (q) => h("span", { class: "error-text", title: q.reason }, q.reason) },
          { label: "Field", value: (q) => h("span", { class: "mono" }, q.field ?? "—") },
          { label: "File:line", value: (q) => h("span", { class: "mono small" }, q.file ? `${q.file}${q.line !== null && q.line !== undefined ? `:${q.line}` : ""}` : "—") },
          { label: "Raw", value: (q) => h("span", { class: "mono raw-preview" }, preview(q.raw)) },
          { label: "Run", value: (q) => runLink(q.run_id) },
          { label: "At", value: (q) => when(q.at), sort: (q) => q.at },
        ], r.rows, { id: "quarantine-table", emptyText: "Nothing quarantined here.", onRow: (q, tr) => {
          for (const el of tr.parentNode.children) el.classList.toggle("selected", el === tr);
          showRecord(record, q);
        } }));
      if (r.rows.length) showRecord(record, r.rows[0]);
    } catch (err) {
      clear(body).appendChild(errorBox(err));
    }
  };
  pick.addEventListener("change", () => { offset = 0; showReplay(); load(); });
  showReplay();
  view.append(
    h("div", { class: "cards" }, card("Quarantined", int(first.total), first.total ? "warn" : "ok", source),
      card("Reasons", String(reasons.length))),
    h("div", { class: "grid-2" },
      section("By reason", reasons.length ? bars(reasons.map((r) => ({ label: r.reason, value: r.count, tone: "warn", link: `#/quarantine/${enc(source)}?reason=${enc(r.reason)}` }))) : empty("No rows quarantined.")),
      section("Replay", replay)),
    h("div", { class: "grid-2 wide-left" },
      section("Rows", h("div", { class: "toolbar" }, h("label", { for: "quarantine-reason" }, "Reason "), pick), body),
      section("Record", record)));
  await load();
}

function showRecord(box, q) {
  clear(box).append(
    h("dl", { class: "facts" },
      h("dt", null, "Rule"), h("dd", null, h("span", { class: "reason" }, q.rule || q.reason)),
      h("dt", null, "Error"), h("dd", { id: "quarantine-error" }, q.reason),
      h("dt", null, "Field"), h("dd", { class: "mono" }, q.field ?? "—"),
      h("dt", null, "File"), h("dd", { class: "mono small" }, q.file ? `${q.file}${q.line !== null && q.line !== undefined ? ` line ${q.line}` : ""}` : "—",
        q.position !== null && q.position !== undefined ? ` · position ${q.position}` : ""),
      h("dt", null, "Run"), h("dd", null, runLink(q.run_id), " · ", when(q.at))),
    h("h3", null, "Raw record"), h("pre", { class: "raw", id: "quarantine-raw" }, pretty(q.raw)));
}

function pretty(raw) {
  if (raw === null || raw === undefined) return "—";
  if (typeof raw !== "string") return JSON.stringify(raw, null, 2);
  try {
    return JSON.stringify(JSON.parse(raw), null, 2);
  } catch (_) {
    return raw;
  }
}

function preview(raw) {
  const text = typeof raw === "string" ? raw : JSON.stringify(raw);
  return text && text.length > 80 ? `${text.slice(0, 79)}…` : text ?? "—";
}

function shellQuote(s) {
  return /^[A-Za-z0-9_.,:/=+-]+$/.test(s) ? s : `'${String(s).replace(/'/g, "'\\''")}'`;
}
