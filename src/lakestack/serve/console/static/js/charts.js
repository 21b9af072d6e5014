// Time-series charts (uPlot, vendored) sized to their container.
import { h, int } from "./dom.js";

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed"];

// series: [{label, values, color, stepped, points}] over xs (ISO strings or Dates). Returns a div.
export function timeChart(xs, series, { height = 220, yLabel = "", id } = {}) {
  const box = h("div", { class: "chart", id, dataset: { points: String(xs.length) } });
  if (xs.length < 2) { // a line needs two points: say what the one point is
    box.classList.add("chart-one");
    box.append(h("div", { class: "empty" }, xs.length ? [`One point so far (${new Date(xs[0]).toISOString().slice(0, 16).replace("T", " ")} UTC): `,
      series.map((s) => `${s.label} ${int(s.values[0])}`).join(", "), ". The chart fills in as runs add more."] : "No points yet."));
    return box;
  }
  if (!window.uPlot) {
    box.appendChild(h("div", { class: "empty" }, "Chart library missing."));
    return box;
  }
  const data = [xs.map((x) => new Date(x).getTime() / 1000), ...series.map((s) => s.values)];
  const opts = (width) => ({
    width, height,
    legend: { show: true },
    cursor: { drag: { x: true, y: false } },
    scales: {
      x: { time: true, range: (_, lo, hi) => (lo === hi ? [lo - 3600, hi + 3600] : [lo, hi]) },
      y: { range: (_, lo, hi) => [Math.min(0, lo ?? 0), Math.max(1, (hi ?? 0) * 1.1)] },
    },
    axes: [
      { stroke: "#64748b", grid: { stroke: "#eef2f7" }, space: 90 },
      { stroke: "#64748b", grid: { stroke: "#eef2f7" }, label: yLabel, size: 70, values: (_, v) => v.map((n) => int(n)) },
    ],
    series: [{}, ...series.map((s, i) => ({
      label: s.label,
      stroke: s.color || COLORS[i % COLORS.length],
      width: 2,
      fill: s.fill,
      paths: s.stepped ? window.uPlot.paths.stepped({ align: 1 }) : undefined,
      points: { show: true, size: 6, fill: s.pointFill },
      value: (_, v) => (v === null || v === undefined ? "—" : int(v)),
    }))],
  });
  let plot = null;
  let frame = 0;
  const observer = new ResizeObserver(() => { // sized in the next frame: no resize-observer loop
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(() => {
      if (!box.isConnected) return;
      const width = Math.max(240, Math.floor(box.clientWidth));
      if (!plot) plot = new window.uPlot(opts(width), data, box);
      else if (Math.abs(plot.width - width) > 1) plot.setSize({ width, height });
    });
  });
  observer.observe(box);
  return box;
}
