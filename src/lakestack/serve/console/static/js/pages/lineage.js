// Lineage: source → Bronze → Silver → Gold → PostgreSQL as an SVG graph laid out in columns
// (longest path from the sources, never left of its layer's column), nodes ordered by the
// barycentre of their neighbours. Hover shows a node's upstream and downstream; click opens the
// dataset; wheel zooms, drag pans. Column-level lineage for Gold below the graph.
import { enc, get } from "../api.js";
import { clear, empty, h, link, s, section, table } from "../dom.js";

export const title = "Lineage";
const KIND_RANK = { source: 0, bronze: 1, silver: 2, gold: 3, postgres: 4 };
const W = 214, H = 36, GAP_X = 90, GAP_Y = 14, PAD = 30, HEAD = 26;

export async function render(view, focus) {
  const g = await get(focus ? `/v1/lineage/${enc(focus)}` : "/v1/lineage", focus ? { direction: "both" } : undefined);
  const nodes = g.nodes || [], edges = g.edges || [], columns = g.columns || [];
  view.append(h("div", { class: "page-head" }, h("h1", null, "Lineage"),
    focus ? h("span", { class: "sub" }, "around ", link(`#/datasets/${enc(focus)}`, focus), " · ", link("#/lineage", "whole graph")) : null));
  if (!nodes.length) {
    view.append(empty("No lineage recorded yet: run the pipeline (lakestack run)."));
    return;
  }
  view.append(section("Graph", h("div", { class: "legend" }, Object.keys(KIND_RANK).map((k) => h("span", { class: `legend-item ${k}` }, k)),
    h("span", { class: "muted" }, " · hover a node to trace it, click to open it, wheel to zoom, drag to pan")), graph(nodes, edges, focus)));
  view.append(section("Column lineage (Gold)", columnLineage(nodes, columns, focus)));
}

export function datasetOf(node) {
  if (/^(bronze|silver|gold|quarantine)\./.test(node.id)) return node.id;
  if (/^(bronze|silver|gold|quarantine)\./.test(node.name || "")) return node.name;
  return node.layer && node.kind !== "source" && node.kind !== "postgres" ? `${node.layer}.${node.name}` : null;
}

function layout(nodes, edges) {
  const preds = new Map(nodes.map((n) => [n.id, []])), succs = new Map(nodes.map((n) => [n.id, []]));
  for (const e of edges) {
    if (preds.has(e.to) && succs.has(e.from)) { preds.get(e.to).push(e.from); succs.get(e.from).push(e.to); }
  }
  const rank = new Map();
  const visiting = new Set();
  const rankOf = (id) => {
    if (rank.has(id)) return rank.get(id);
    if (visiting.has(id)) return 0; // a cycle: cut it here
    visiting.add(id);
    const node = nodes.find((n) => n.id === id);
    let r = KIND_RANK[node.kind] ?? KIND_RANK[node.layer] ?? 2;
    for (const p of preds.get(id)) r = Math.max(r, rankOf(p) + 1);
    visiting.delete(id);
    rank.set(id, r);
    return r;
  };
  nodes.forEach((n) => rankOf(n.id));
  const last = Math.max(0, ...nodes.filter((n) => n.kind !== "postgres").map((n) => rank.get(n.id)));
  for (const n of nodes) if (n.kind === "postgres") rank.set(n.id, last + 1); // published tables: the last column
  const cols = [];
  for (const n of nodes) (cols[rank.get(n.id)] ||= []).push(n.id);
  const dense = cols.filter(Boolean);
  dense.forEach((c) => c.sort());
  const pos = new Map();
  const place = () => dense.forEach((c, x) => c.forEach((id, y) => pos.set(id, { x, y })));
  place();
  for (let sweep = 0; sweep < 6; sweep++) { // barycentre ordering, alternating directions
    const forward = sweep % 2 === 0;
    for (const c of forward ? dense : [...dense].reverse()) {
      const key = (id) => {
        const nb = forward ? preds.get(id) : succs.get(id);
        return nb.length ? nb.reduce((a, n) => a + pos.get(n).y, 0) / nb.length : pos.get(id).y;
      };
      const keys = new Map(c.map((id) => [id, key(id)]));
      c.sort((a, b) => keys.get(a) - keys.get(b) || (a < b ? -1 : 1));
      c.forEach((id, y) => pos.set(id, { x: pos.get(id).x, y }));
    }
  }
  const tallest = Math.max(...dense.map((c) => c.length));
  const coords = new Map();
  dense.forEach((c, x) => {
    const offset = ((tallest - c.length) * (H + GAP_Y)) / 2;
    c.forEach((id, y) => coords.set(id, { x: PAD + x * (W + GAP_X), y: PAD + HEAD + offset + y * (H + GAP_Y) }));
  });
  return { coords, preds, succs, columns: dense, width: PAD * 2 + dense.length * W + (dense.length - 1) * GAP_X,
    height: PAD * 2 + HEAD + tallest * H + (tallest - 1) * GAP_Y };
}

function reach(start, next) {
  const seen = new Set([start]), stack = [start];
  while (stack.length) for (const n of next.get(stack.pop()) || []) if (!seen.has(n)) { seen.add(n); stack.push(n); }
  return seen;
}

function graph(nodes, edges, focus) {
  const L = layout(nodes, edges);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const root = s("svg", { class: "lineage", id: "lineage-graph", viewBox: `0 0 ${L.width} ${L.height}`,
    preserveAspectRatio: "xMidYMin meet", role: "img", "aria-label": "lineage graph" });
  const world = s("g");
  root.appendChild(world);
  L.columns.forEach((c, x) => {
    const kinds = [...new Set(c.map((id) => byId.get(id).kind))].join(" / ");
    world.appendChild(s("text", { class: "col-head", x: PAD + x * (W + GAP_X) + W / 2, y: PAD + 6 }, kinds));
  });
  const edgeEls = [];
  for (const e of edges) {
    const a = L.coords.get(e.from), b = L.coords.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
    const path = s("path", { class: "edge", d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2 - 6},${y2}`,
      "marker-end": "url(#arrow)", "data-from": e.from, "data-to": e.to });
    edgeEls.push(path);
    world.appendChild(path);
  }
  root.insertBefore(s("defs", null, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "2", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" },
    s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }))), world);
  const nodeEls = new Map();
  for (const n of nodes) {
    const c = L.coords.get(n.id);
    const target = datasetOf(n);
    const label = n.name || n.id;
    const el = s("g", { class: ["node", n.kind, n.id === focus ? "focus" : null, target ? "linked" : null].filter(Boolean).join(" "),
      transform: `translate(${c.x},${c.y})`, "data-id": n.id, "data-kind": n.kind, tabindex: "0" },
    s("title", null, `${n.kind}: ${n.id}${target ? " (click to open)" : ""}`),
    s("rect", { width: W, height: H, rx: 7 }),
    s("rect", { class: "stripe", width: 6, height: H, rx: 3 }),
    s("text", { x: 14, y: H / 2 + 4 }, label.length > 27 ? `${label.slice(0, 26)}…` : label));
    const open = () => {
      if (target) location.hash = `#/datasets/${enc(target)}`;
      else if (n.kind === "source") location.hash = `#/quarantine/${enc(n.name || n.id)}`;
    };
    el.addEventListener("click", () => { if (!dragged) open(); });
    el.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
    el.addEventListener("mouseenter", () => trace(n.id));
    el.addEventListener("mouseleave", () => trace(null));
    nodeEls.set(n.id, el);
    world.appendChild(el);
  }
  const trace = (id) => {
    root.classList.toggle("tracing", Boolean(id));
    if (!id) {
      nodeEls.forEach((el) => el.classList.remove("lit"));
      edgeEls.forEach((el) => el.classList.remove("lit"));
      return;
    }
    const lit = new Set([...reach(id, L.preds), ...reach(id, L.succs)]);
    nodeEls.forEach((el, k) => el.classList.toggle("lit", lit.has(k)));
    edgeEls.forEach((el) => el.classList.toggle("lit", lit.has(el.dataset.from) && lit.has(el.dataset.to)
      && (reach(id, L.preds).has(el.dataset.from) || reach(id, L.succs).has(el.dataset.to))));
  };
  // zoom and pan by the viewBox
  let view = { x: 0, y: 0, w: L.width, h: L.height }, drag = null, dragged = false;
  const apply = () => root.setAttribute("viewBox", `${view.x} ${view.y} ${view.w} ${view.h}`);
  root.addEventListener("wheel", (e) => {
    e.preventDefault();
    const k = e.deltaY > 0 ? 1.15 : 1 / 1.15, r = root.getBoundingClientRect();
    const fx = (e.clientX - r.left) / r.width, fy = (e.clientY - r.top) / r.height;
    const w = Math.min(L.width * 4, Math.max(L.width / 6, view.w * k)), hh = (view.h * w) / view.w;
    view = { x: view.x + (view.w - w) * fx, y: view.y + (view.h - hh) * fy, w, h: hh };
    apply();
  }, { passive: false });
  root.addEventListener("pointerdown", (e) => { drag = { x: e.clientX, y: e.clientY, v: { ...view } }; dragged = false; });
  window.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const r = root.getBoundingClientRect(), k = view.w / r.width;
    if (Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) > 4) dragged = true;
    view = { ...view, x: drag.v.x - (e.clientX - drag.x) * k, y: drag.v.y - (e.clientY - drag.y) * k };
    apply();
  });
  window.addEventListener("pointerup", () => { drag = null; });
  const fit = h("button", { type: "button", class: "ghost", onclick: () => { view = { x: 0, y: 0, w: L.width, h: L.height }; apply(); } }, "Fit");
  return h("div", { class: "graph-wrap", style: { aspectRatio: `${L.width} / ${L.height}` } }, fit, root);
}

function columnLineage(nodes, columns, focus) {
  const golds = [...new Set(columns.map((c) => c.to.split(".").slice(0, 2).join(".")).filter((d) => d.startsWith("gold.")))].sort();
  if (!golds.length) return empty("No column-level lineage recorded for Gold.");
  const box = h("div", { id: "column-lineage" });
  const pick = h("select", { id: "column-lineage-dataset" }, golds.map((d) => h("option", { value: d }, d)));
  const edgesInto = (d) => columns.filter((c) => c.to.startsWith(`${d}.`)).length;
  pick.value = golds.includes(focus) ? focus : [...golds].sort((a, b) => edgesInto(b) - edgesInto(a))[0];
  const open = h("a", { href: "#/datasets" }, "open dataset");
  const show = () => {
    const dataset = pick.value;
    open.setAttribute("href", `#/datasets/${enc(dataset)}`);
    const rows = new Map();
    for (const c of columns) {
      if (!c.to.startsWith(`${dataset}.`)) continue;
      const col = c.to.slice(dataset.length + 1);
      (rows.get(col) || rows.set(col, []).get(col)).push(c);
    }
    clear(box).appendChild(table([
      { label: `${dataset} column`, value: (r) => h("span", { class: "mono" }, r[0]) },
      { label: "comes from", value: (r) => h("span", { class: "from-list" }, r[1].map((c) => h("span", { class: "mono from" }, c.from))),
        sort: (r) => r[1].map((c) => c.from).join() },
      { label: "how", value: (r) => [...new Set(r[1].map((c) => c.transformation).filter(Boolean))].join(", ").toLowerCase() || "—" },
    ], [...rows.entries()], { id: "column-lineage-table" }));
  };
  pick.addEventListener("change", show);
  show();
  return h("div", null, h("div", { class: "toolbar" }, h("label", { for: "column-lineage-dataset" }, "Gold dataset "), pick,
    " ", open), box);
}
