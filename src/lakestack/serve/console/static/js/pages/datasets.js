// Datasets: a searchable list, and a page per dataset (schema, PII, contract, sample rows as the
// viewer's role may see them, snapshot history and its checks with their history as charts).
import { enc, get } from "../api.js";
import { timeChart } from "../charts.js";
import {
  age, badge, card, clear, dataGrid, empty, errorBox, h, int, layerTag, link, loading, runLink, section, table, when, whenText,
} from "../dom.js";

export const title = "Datasets";
const LAYERS = ["", "bronze", "silver", "gold", "quarantine"];
const PAGE = 50;

export async function render(view, name, params) {
  if (name) return renderDataset(view, name);
  return renderList(view, params);
}

async function renderList(view, params) {
  let q = params.get("q") || "", layer = params.get("layer") || "";
  const results = h("div", { id: "dataset-list" });
  const search = h("input", { type: "search", id: "dataset-search", placeholder: "Search names, owners, descriptions…", value: q });
  const chips = h("div", { class: "chips" }, LAYERS.map((l) => h("button", {
    type: "button", class: ["chip", l === layer ? "active" : null], dataset: { layer: l },
    onclick: (e) => { layer = l; [...chips.children].forEach((c) => c.classList.toggle("active", c === e.target)); load(); },
  }, l || "all")));
  let timer = null;
  search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => { q = search.value.trim(); load(); }, 200); });
  const load = async () => {
    clear(results).appendChild(loading());
    try {
      const { datasets } = await get("/v1/datasets", { q, layer });
      clear(results).appendChild(listTable(datasets));
      results.dataset.count = String(datasets.length);
    } catch (err) {
      clear(results).appendChild(errorBox(err));
    }
  };
  view.append(h("div", { class: "page-head" }, h("h1", null, "Datasets")),
    h("div", { class: "toolbar" }, search, chips), results);
  await load();
}

function listTable(datasets) {
  return table([
    { label: "Dataset", value: (d) => link(`#/datasets/${enc(d.name)}`, d.name, { title: d.description || "" }), sort: (d) => d.name },
    { label: "Layer", value: (d) => layerTag(d.layer), sort: (d) => d.layer },
    { label: "Rows", value: (d) => int(d.rows), sort: (d) => d.rows, class: "num" },
    { label: "Contract", value: (d) => (d.contract ? `${d.contract.name} v${d.contract.version}` : "—") },
    { label: "Owner", value: (d) => d.owner || "—" },
    { label: "PII", value: (d) => piiTags(d.pii), sort: (d) => Object.keys(d.pii || {}).length },
    { label: "Last commit", value: (d) => h("span", { title: whenText(d.last_commit) }, age(d.age_s)), sort: (d) => d.age_s, class: "num" },
  ], datasets, { id: "datasets-table", emptyText: "No dataset matches.", onRow: (d) => { location.hash = `#/datasets/${enc(d.name)}`; } });
}

function piiTags(pii) {
  const entries = Object.entries(pii || {});
  if (!entries.length) return "—";
  return h("span", { class: "pii-list" }, entries.map(([col, cls]) => h("span", { class: "pii", title: `${col}: ${cls}` }, `${col}:${cls}`)));
}

async function renderDataset(view, name) {
  const d = await get(`/v1/datasets/${enc(name)}`);
  const snaps = d.snapshots || [], checks = d.checks || [], schema = d.schema || [];
  const failing = checks.filter((c) => c.status === "fail" || c.status === "error");
  view.append(
    h("div", { class: "page-head" },
      h("div", { class: "crumbs" }, link("#/datasets", "Datasets"), " / "),
      h("h1", { id: "dataset-name" }, d.name), layerTag(d.layer),
      h("a", { class: "button ghost", href: `#/lineage/${enc(d.name)}` }, "Lineage →")),
    d.description ? h("p", { class: "lead" }, d.description) : null,
    h("div", { class: "cards" },
      card("Rows", int(d.rows)),
      card("Last commit", age(d.age_s), d.age_s > 86400 ? "warn" : null, when(d.last_commit)),
      card("Contract", d.contract ? `v${d.contract.version}` : "—", null, d.contract ? d.contract.name : "no contract"),
      card("Owner", d.owner || "—"),
      checksCard(checks, failing),
      card("Snapshot", d.snapshot_id ? h("span", { class: "mono small" }, d.snapshot_id) : "—", null, `${snaps.length} in history`)),
    h("div", { class: "grid-2" },
      section("Schema", schemaTable(schema)),
      section("Row count over snapshots", snapshotChart(snaps), snapshotTable(snaps))),
    section("Checks", checksBlock(checks)),
    section("Sample rows", sampleRows(d.name)),
  );
}

function checksCard(checks, failing) {
  const passing = checks.filter((c) => c.status === "pass").length;
  const warning = checks.filter((c) => c.status === "warn").length;
  if (failing.length) return card("Checks", `${failing.length} failing`, "bad", `${passing} of ${checks.length} passing`);
  if (warning) return card("Checks", `${warning} warning`, "warn", `${passing} of ${checks.length} passing`);
  return card("Checks", checks.length ? `${passing} passing` : "none", checks.length ? "ok" : null);
}

function schemaTable(schema) {
  return table([
    { label: "Column", value: (c) => h("span", { class: "mono" }, c.name) },
    { label: "Type", value: (c) => h("span", { class: "mono muted" }, c.type) },
    { label: "Null", value: (c) => (c.nullable ? "yes" : "no") },
    { label: "PII", value: (c) => (c.pii ? h("span", { class: "pii" }, c.pii) : "—"), sort: (c) => c.pii || "" },
    { label: "Masking (you)", value: (c) => (c.masking ? h("span", { class: "mask-tag" }, c.masking) : "—"), sort: (c) => c.masking || "" },
  ], schema, { id: "schema-table", emptyText: "No schema." });
}

function snapshotChart(snaps) {
  const points = [...snaps].filter((s) => s.rows !== null && s.rows !== undefined)
    .sort((a, b) => (a.committed_at < b.committed_at ? -1 : 1));
  if (!points.length) return empty("No row counts recorded.");
  return timeChart(points.map((s) => s.committed_at), [
    { label: "rows", values: points.map((s) => s.rows), stepped: true, fill: "rgba(37,99,235,0.08)" },
  ], { id: "snapshot-chart", yLabel: "rows" });
}

function snapshotTable(snaps) {
  const recent = [...snaps].sort((a, b) => (a.committed_at < b.committed_at ? 1 : -1)).slice(0, 8);
  return h("details", { class: "more" }, h("summary", null, `Last ${recent.length} of ${snaps.length} snapshots`), table([
    { label: "Snapshot", value: (s) => h("span", { class: "mono small" }, s.snapshot_id) },
    { label: "Committed", value: (s) => when(s.committed_at) },
    { label: "Operation", value: (s) => s.operation },
    { label: "Rows", value: (s) => int(s.rows), class: "num" },
    { label: "Added", value: (s) => int(s.added_rows), class: "num" },
    { label: "Run", value: (s) => runLink(s.run_id) },
  ], recent, { id: "snapshots-table" }));
}

function checksBlock(checks) {
  if (!checks.length) return empty("No checks on this dataset.");
  const history = h("div", { class: "check-history", id: "check-history" });
  const show = async (c) => {
    clear(history).append(h("h3", null, c.name), loading());
    try {
      const data = await get(`/v1/checks/${enc(c.name)}/history`, { limit: 50, dataset: c.dataset });
      clear(history).append(h("h3", null, `History · ${c.name}`), checkHistoryChart(data.history || []));
    } catch (err) {
      clear(history).appendChild(errorBox(err));
    }
  };
  const grid = table([
    { label: "Check", value: (c) => c.name },
    { label: "Status", value: (c) => badge(c.status), sort: (c) => c.status },
    { label: "Severity", value: (c) => c.severity },
    { label: "Gate", value: (c) => (c.blocking ? "blocking" : "—") },
    { label: "Failing rows", value: (c) => int(c.failing_rows), sort: (c) => c.failing_rows, class: "num" },
    { label: "Checked", value: (c) => when(c.at), sort: (c) => c.at },
  ], checks, { id: "checks-table", onRow: (c) => show(c), rowClass: (c) => (c.status === "fail" ? "row-bad" : null) });
  const first = checks.find((c) => c.status === "fail") || checks[0];
  show(first);
  return h("div", { class: "grid-2 wide-left" }, grid, history);
}

export function checkHistoryChart(history) {
  const points = [...history].sort((a, b) => (a.at < b.at ? -1 : 1));
  if (!points.length) return empty("No history yet.");
  const strip = h("div", { class: "status-strip" }, points.map((p) =>
    h("span", { class: `tick ${p.status}`, title: `${whenText(p.at)}: ${p.status}${p.failing_rows ? `, ${p.failing_rows} failing rows` : ""}` })));
  return h("div", null,
    timeChart(points.map((p) => p.at), [{ label: "failing rows", values: points.map((p) => p.failing_rows ?? 0), color: "#dc2626", stepped: true }],
      { height: 160, yLabel: "failing rows" }),
    h("div", { class: "strip-label" }, "each run, oldest → newest"), strip);
}

function sampleRows(name) {
  const box = h("div", { id: "sample-rows" });
  let offset = 0;
  const load = async () => {
    clear(box).appendChild(loading());
    try {
      const r = await get(`/v1/datasets/${enc(name)}/rows`, { limit: PAGE, offset });
      const masked = r.columns.filter((c) => c.masking).map((c) => c.name);
      clear(box).append(
        h("div", { class: "toolbar" },
          h("span", { class: "muted" }, `rows ${int(r.total ? r.offset + 1 : 0)}–${int(r.offset + r.rows.length)} of ${int(r.total)}`),
          h("button", { type: "button", disabled: r.offset <= 0, onclick: () => { offset = Math.max(0, offset - PAGE); load(); } }, "‹ Prev"),
          h("button", { type: "button", disabled: r.offset + r.rows.length >= r.total, onclick: () => { offset += PAGE; load(); } }, "Next ›"),
          masked.length ? h("span", { class: "mask-note" }, `masked for your role: ${masked.join(", ")}`) : null),
        r.rows.length ? dataGrid(r.columns, r.rows, { id: "rows-table" }) : empty("No rows."));
    } catch (err) {
      clear(box).appendChild(errorBox(err));
    }
  };
  load();
  return box;
}
