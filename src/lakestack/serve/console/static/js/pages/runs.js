// Runs: the list (filter by status and job), and a run page with its stages' timings, the rows
// each dataset read and wrote, its child jobs and its checks.
import { enc, get } from "../api.js";
import { timeChart } from "../charts.js";
import {
  badge, bars, card, clear, dsLink, duration, empty, errorBox, h, int, link, loading, runLink, section, table, timeline, when,
} from "../dom.js";

export const title = "Runs";
const STATUSES = ["", "COMPLETE", "FAIL", "BLOCKED", "RUNNING", "ABORT"];

export async function render(view, id, params) {
  if (id) return renderRun(view, id);
  let status = params.get("status") || "", job = params.get("job") || "";
  const results = h("div", { id: "runs-list" });
  const statusPick = h("select", { id: "runs-status" }, STATUSES.map((st) => h("option", { value: st }, st || "any status")));
  statusPick.value = status;
  const jobBox = h("input", { type: "search", id: "runs-job", placeholder: "job (run, ingest.orders, build.…)", value: job });
  const load = async () => {
    clear(results).appendChild(loading());
    try {
      const { runs } = await get("/v1/runs", { status, job, limit: 100 });
      const timed = runs.filter((r) => r.started_at).sort((a, b) => (a.started_at < b.started_at ? -1 : 1));
      clear(results).append(
        timed.length > 1 ? section("Rows per run", timeChart(timed.map((r) => r.started_at), [
          { label: "written", values: timed.map((r) => r.rows_written), color: "#2563eb" },
          { label: "quarantined", values: timed.map((r) => r.rows_quarantined), color: "#d97706" },
        ], { id: "runs-chart", height: 180, yLabel: "rows" })) : null,
        runsTable(runs, "runs-table"));
    } catch (err) {
      clear(results).appendChild(errorBox(err));
    }
  };
  statusPick.addEventListener("change", () => { status = statusPick.value; load(); });
  let timer = null;
  jobBox.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => { job = jobBox.value.trim(); load(); }, 250); });
  view.append(h("div", { class: "page-head" }, h("h1", null, "Runs")), h("div", { class: "toolbar" }, statusPick, jobBox), results);
  await load();
}

export function runsTable(runs, id) {
  return table([
    { label: "Run", value: (r) => runLink(r.run_id), sort: (r) => r.run_id },
    { label: "Job", value: (r) => r.job },
    { label: "Status", value: (r) => badge(r.status, r.error || undefined), sort: (r) => r.status },
    { label: "Started", value: (r) => when(r.started_at), sort: (r) => r.started_at },
    { label: "Duration", value: (r) => duration(r.duration_s), sort: (r) => r.duration_s, class: "num" },
    { label: "Read", value: (r) => int(r.rows_read), sort: (r) => r.rows_read, class: "num" },
    { label: "Written", value: (r) => int(r.rows_written), sort: (r) => r.rows_written, class: "num" },
    { label: "Quarantined", value: (r) => int(r.rows_quarantined), sort: (r) => r.rows_quarantined, class: "num" },
    { label: "Error", value: (r) => (r.error ? h("span", { class: "error-text", title: r.error }, r.error) : "") },
  ], runs, { id, emptyText: "No runs match.", onRow: (r) => { location.hash = `#/runs/${enc(r.run_id)}`; },
    rowClass: (r) => (["FAIL", "BLOCKED", "ABORT"].includes(String(r.status).toUpperCase()) ? "row-bad" : null) });
}

async function renderRun(view, id) {
  const r = await get(`/v1/runs/${enc(id)}`);
  const stages = r.stages || [], datasets = r.datasets || [], children = r.children || [], checks = r.checks || [];
  const total = stages.reduce((a, st) => a + (st.duration_s || 0), 0);
  view.append(
    h("div", { class: "page-head" }, h("div", { class: "crumbs" }, link("#/runs", "Runs"), " / "),
      h("h1", null, r.job), badge(r.status), h("span", { class: "mono sub", id: "run-id" }, r.run_id)),
    r.error ? h("div", { class: "error" }, h("strong", null, "Error "), r.error) : null,
    h("div", { class: "cards" },
      card("Started", when(r.started_at)),
      card("Duration", duration(r.duration_s)),
      card("Rows read", int(r.rows_read)),
      card("Rows written", int(r.rows_written)),
      card("Quarantined", int(r.rows_quarantined), r.rows_quarantined ? "warn" : null),
      r.parent_run_id ? card("Parent run", runLink(r.parent_run_id)) : null),
    h("div", { class: "grid-2" },
      section("Stage timings", stages.length ? h("div", { id: "run-stages" }, bars(stages.map((st) => ({
        label: st.name, value: st.duration_s, tone: "info",
      })), { format: duration }), h("div", { class: "muted small" }, `stages total ${duration(total)}`)) : empty("No stage timings recorded.")),
      section("Rows by dataset", datasets.length ? table([
        { label: "Dataset", value: (d) => dsLink(d.dataset) },
        { label: "Direction", value: (d) => d.direction },
        { label: "Read", value: (d) => int(d.rows_read), class: "num", sort: (d) => d.rows_read },
        { label: "Written", value: (d) => int(d.rows_written), class: "num", sort: (d) => d.rows_written },
        { label: "Quarantined", value: (d) => int(d.rows_quarantined), class: "num", sort: (d) => d.rows_quarantined },
        { label: "Snapshot out", value: (d) => h("span", { class: "mono small" }, d.snapshot_out || "—") },
      ], datasets, { id: "run-datasets" }) : empty("No datasets recorded."))),
    children.length ? section(`Jobs in this run (${children.length})`, h("div", { id: "run-children" },
      timeline(children.filter((c) => c.started_at).map((c) => {
        const start = new Date(c.started_at).getTime();
        const end = c.ended_at ? new Date(c.ended_at).getTime() : start + 1000 * (c.duration_s || 0);
        return { label: c.job, start, end, link: `#/runs/${enc(c.run_id)}`,
          tone: ["FAIL", "BLOCKED", "ABORT"].includes(String(c.status).toUpperCase()) ? "bad" : "ok" };
      }), { format: duration }),
      runsTable(children, "run-children-table"))) : null,
    section("Checks", table([
      { label: "Check", value: (c) => c.name },
      { label: "Dataset", value: (c) => dsLink(c.dataset) },
      { label: "Status", value: (c) => badge(c.status) },
      { label: "Gate", value: (c) => (c.blocking ? "blocking" : "—") },
      { label: "Failing rows", value: (c) => int(c.failing_rows), class: "num" },
    ], checks, { id: "run-checks", emptyText: "No checks ran in this job.", rowClass: (c) => (c.status === "fail" ? "row-bad" : null) })),
  );
}
