// Quality: every check's last result, failing ones first; a check's history and its failing rows
// (masked for the viewer's role, as the API returns them).
import { enc, get } from "../api.js";
import { badge, card, clear, dataGrid, dsLink, empty, errorBox, h, int, loading, runLink, section, table, when } from "../dom.js";
import { checkHistoryChart } from "./datasets.js";

export const title = "Quality";
const RANK = { error: 0, fail: 1, warn: 2, pass: 3 };

export async function render(view, _arg, params) {
  const { checks } = await get("/v1/checks");
  const sorted = [...checks].sort((a, b) => (RANK[a.status] ?? 4) - (RANK[b.status] ?? 4) || (a.name < b.name ? -1 : 1));
  const failing = sorted.filter((c) => c.status === "fail" || c.status === "error");
  const detail = h("div", { id: "check-detail" });
  const show = async (c) => {
    clear(detail).append(h("h2", null, c.name), loading());
    try {
      const [history, failures] = await Promise.all([
        get(`/v1/checks/${enc(c.name)}/history`, { limit: 50, dataset: c.dataset }),
        c.status === "pass" ? Promise.resolve(null) : get(`/v1/checks/${enc(c.name)}/failures`, { run_id: c.run_id, dataset: c.dataset }),
      ]);
      clear(detail).append(
        h("h2", null, c.name, " ", badge(c.status)),
        h("div", { class: "muted" }, dsLink(c.dataset), ` · severity ${c.severity} · `, c.blocking ? "blocks the gate" : "does not block", " · run ", runLink(c.run_id)),
        h("h3", null, "History"), checkHistoryChart(history.history || []),
        h("h3", null, "Failing rows"),
        failures ? (failures.rows.length ? dataGrid(failures.columns, failures.rows, { id: "failing-rows" }) : empty("No failing rows kept."))
          : empty("It passed: no failing rows."));
    } catch (err) {
      clear(detail).appendChild(errorBox(err));
    }
  };
  const pass = sorted.filter((c) => c.status === "pass").length;
  view.append(
    h("div", { class: "page-head" }, h("h1", null, "Quality")),
    h("div", { class: "cards" },
      card("Checks", String(sorted.length)),
      card("Passing", String(pass), "ok"),
      card("Failing", String(failing.length), failing.length ? "bad" : "ok", `${failing.filter((c) => c.blocking).length} blocking`),
      card("Warnings", String(sorted.filter((c) => c.status === "warn").length), null)),
    h("div", { class: "grid-2 wide-left" },
      section("Checks", table([
        { label: "Check", value: (c) => c.name },
        { label: "Dataset", value: (c) => dsLink(c.dataset), sort: (c) => c.dataset },
        { label: "Status", value: (c) => badge(c.status), sort: (c) => RANK[c.status] ?? 4 },
        { label: "Severity", value: (c) => c.severity },
        { label: "Gate", value: (c) => (c.blocking ? "blocking" : "—") },
        { label: "Failing", value: (c) => int(c.failing_rows), sort: (c) => c.failing_rows, class: "num" },
        { label: "At", value: (c) => when(c.at), sort: (c) => c.at },
      ], sorted, { id: "quality-checks", onRow: (c) => show(c), emptyText: "No checks have run yet.",
        rowClass: (c) => (c.status === "fail" || c.status === "error" ? "row-bad" : null) })),
      section("Details", detail)),
  );
  const wanted = params.get("check");
  const wantedDs = params.get("dataset");
  const first = sorted.find((c) => c.name === wanted && (!wantedDs || c.dataset === wantedDs)) || failing[0] || sorted[0];
  if (first) await show(first);
  else detail.appendChild(empty("Select a check."));
}
