// Overview: last runs, failed gates, SLA status, quarantine rates, freshness per dataset.
import { get } from "../api.js";
import { age, badge, bars, card, dsLink, duration, empty, h, int, pct, runLink, section, setProject, table, when } from "../dom.js";

export const title = "Overview";

export async function render(view) {
  const o = await get("/v1/overview");
  setProject(o.project);
  const runs = o.runs || [], failed = o.failed_checks || [], slas = o.slas || [];
  const quarantine = o.quarantine || [], fresh = o.freshness || [];
  const last = runs[0];
  const breaches = slas.filter((s) => s.status === "breach");
  const blocking = failed.filter((c) => c.blocking);
  const quarantined = quarantine.reduce((n, q) => n + (q.quarantined || 0), 0);
  const received = quarantine.reduce((n, q) => n + (q.received || 0), 0);
  view.append(
    h("div", { class: "page-head" }, h("h1", null, "Overview"), h("span", { class: "sub" }, o.project)),
    h("div", { class: "cards" },
      card("Last run", last ? badge(last.status) : "none", last && isBad(last.status) ? "bad" : null,
        last ? [last.job, " · ", when(last.started_at)] : null),
      card("Checks not passing", String(failed.length), failed.length ? "bad" : "ok",
        blocking.length ? `${blocking.length} blocking a gate` : "no gate blocked"),
      card("SLAs", breaches.length ? `${breaches.length} breached` : `${slas.length} ok`, breaches.length ? "bad" : "ok",
        `${slas.length} defined`),
      card("Quarantined", int(quarantined), quarantined ? "warn" : "ok",
        received ? `${pct(quarantined / received)} of ${int(received)} received` : "nothing received")),
    section("Last runs", table([
        { label: "Run", value: (r) => runLink(r.run_id) },
        { label: "Job", value: (r) => r.job },
        { label: "Status", value: (r) => badge(r.status, r.error || undefined), sort: (r) => r.status },
        { label: "Started", value: (r) => when(r.started_at), sort: (r) => r.started_at },
        { label: "Duration", value: (r) => duration(r.duration_s), sort: (r) => r.duration_s, class: "num" },
        { label: "Written", value: (r) => int(r.rows_written), sort: (r) => r.rows_written, class: "num" },
        { label: "Quarantined", value: (r) => int(r.rows_quarantined), sort: (r) => r.rows_quarantined, class: "num" },
      ], runs, { id: "overview-runs", emptyText: "No runs yet: lakestack run", rowClass: (r) => (isBad(r.status) ? "row-bad" : null) })),
    h("div", { class: "grid-2" },
      section("Failed checks and gates", failed.length ? table([
        { label: "Check", value: (c) => h("a", { href: `#/quality?check=${encodeURIComponent(c.name)}&dataset=${encodeURIComponent(c.dataset)}` }, c.name), class: "wrap" },
        { label: "Dataset", value: (c) => dsLink(c.dataset) },
        { label: "Status", value: (c) => [badge(c.status), c.blocking ? [" ", h("span", { class: "badge bad", title: "blocks its gate" }, "gate blocked")] : null],
          sort: (c) => `${c.blocking ? 0 : 1}${c.status}` },
        { label: "Failing rows", value: (c) => int(c.failing_rows), sort: (c) => c.failing_rows, class: "num" },
      ], failed, { id: "overview-failed" }) : h("div", { class: "all-good", id: "overview-failed" }, "✓ Every check passed in the last runs.")),
      section("SLA status", table([
        { label: "SLA", value: (s) => h("div", null, h("div", null, s.name),
          h("div", { class: "muted small" }, s.kind, s.dataset ? [" · ", dsLink(s.dataset)] : null)), sort: (s) => s.name },
        { label: "Status", value: (s) => badge(s.status), sort: (s) => s.status },
        { label: "Detail", value: (s) => h("span", { class: "small" }, s.detail || ""), class: "wrap" },
      ], slas, { id: "overview-slas", emptyText: "No SLAs defined (slas.yaml)." }))),
    h("div", { class: "grid-2" },
      section("Freshness per dataset", fresh.length ? bars(fresh.map((f) => ({
        label: f.dataset, link: `#/datasets/${encodeURIComponent(f.dataset)}`, value: f.age_s,
        tone: f.age_s === null ? "muted" : f.age_s > 86400 ? "warn" : "ok",
      })), { format: age }) : empty("No datasets yet.")),
      section("Quarantine rate by source", quarantine.length ? bars(quarantine.map((q) => ({
          label: q.source, link: `#/quarantine/${encodeURIComponent(q.source)}`, value: q.rate,
          tone: q.rate > 0.05 ? "bad" : q.rate > 0 ? "warn" : "ok",
        })), { format: pct }) : empty("No sources yet."))),
  );
}

function isBad(status) {
  return ["fail", "failed", "blocked", "abort", "error"].includes(String(status || "").toLowerCase());
}
