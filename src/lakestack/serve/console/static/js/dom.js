// DOM building without innerHTML: every piece of data becomes a text node or an attribute value,
// so a value such as "<script>" is shown as text and never parsed as markup.
const SVG_NS = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.setAttribute("class", Array.isArray(v) ? v.filter(Boolean).join(" ") : v);
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value") el.value = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// -- formatting -------------------------------------------------------------------------------
const nf = new Intl.NumberFormat("en-US");

export function int(n) {
  return n === null || n === undefined ? "—" : nf.format(n);
}

export function pct(r) {
  if (r === null || r === undefined) return "—";
  const p = r * 100;
  return `${p < 0.1 && p > 0 ? p.toFixed(2) : p.toFixed(1)} %`;
}

export function age(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  const s = Math.max(0, seconds);
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${(s / 3600).toFixed(1)} h ago`;
  return `${(s / 86400).toFixed(1)} d ago`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

export function whenText(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.toISOString().replace("T", " ").slice(0, 16)} UTC`;
}

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return h("span", { title: `${d.toISOString()} (UTC)` }, d.toISOString().replace("T", " ").slice(0, 16));
}

export function cell(v) {
  if (v === null || v === undefined) return h("span", { class: "null" }, "null");
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

// -- pieces -----------------------------------------------------------------------------------
const TONE = {
  pass: "ok", ok: "ok", complete: "ok", success: "ok", running: "info", start: "info",
  warn: "warn", unknown: "muted", skipped: "muted",
  fail: "bad", failed: "bad", error: "bad", breach: "bad", blocked: "bad", abort: "bad", aborted: "bad",
};

export function badge(status, title) {
  const text = status === null || status === undefined ? "—" : String(status);
  const tone = TONE[text.toLowerCase()] || "muted";
  return h("span", { class: `badge ${tone}`, title }, text);
}

export function layerTag(layer) {
  return h("span", { class: `layer ${String(layer || "").toLowerCase()}` }, layer || "—");
}

export function link(href, text, attrs) {
  return h("a", { href, ...(attrs || {}) }, text);
}

export function dsLink(name) {
  if (!/^(bronze|silver|gold|quarantine)\./.test(String(name))) return h("span", { class: "muted" }, name ?? "—");
  return link(`#/datasets/${encodeURIComponent(name)}`, name);
}

export function runLink(id) {
  return id ? link(`#/runs/${encodeURIComponent(id)}`, String(id).slice(0, 12), { title: id, class: "mono" }) : "—";
}

export function card(label, value, tone, sub) {
  return h("div", { class: ["card", tone] }, h("div", { class: "card-label" }, label),
    h("div", { class: "card-value" }, value), sub ? h("div", { class: "card-sub" }, sub) : null);
}

export function section(title, ...body) {
  return h("section", { class: "panel" }, h("h2", null, title), ...body);
}

export function empty(text) {
  return h("div", { class: "empty" }, text);
}

export function errorBox(err) {
  const status = err && err.status ? `${err.status} · ` : "";
  const hint = err && err.status === 401 ? "Enter an API key (lakestack keys create --role ROLE) above." : null;
  return h("div", { class: "error", role: "alert" },
    h("strong", null, status + ((err && err.title) || "Error")), " ",
    h("span", null, (err && err.detail) || String(err && err.message ? err.message : err)),
    hint ? h("div", { class: "hint" }, hint) : null);
}

export function loading() {
  return h("div", { class: "loading" }, "Loading…");
}

// A horizontal bar per item: label, bar scaled to the largest value, formatted value.
export function bars(items, { format = int, tone } = {}) {
  const max = Math.max(1e-9, ...items.map((i) => i.value || 0));
  return h("div", { class: "bars" }, items.map((i) =>
    h("div", { class: "bar-row", title: `${i.label}: ${format(i.value)}` },
      h("div", { class: "bar-label" }, i.link ? link(i.link, i.label) : i.label),
      h("div", { class: "bar-track" },
        h("div", { class: ["bar-fill", i.tone || tone], style: { width: `${Math.max(0.5, (100 * (i.value || 0)) / max)}%` } })),
      h("div", { class: "bar-value" }, format(i.value)))));
}

// A Gantt-like timeline: each item {label, start, end (ms), tone, link} placed on one shared time axis.
export function timeline(items, { format } = {}) {
  const t0 = Math.min(...items.map((i) => i.start)), t1 = Math.max(...items.map((i) => i.end));
  const span = Math.max(1, t1 - t0);
  return h("div", { class: "bars timeline" }, items.map((i) =>
    h("div", { class: "bar-row", title: `${i.label}: ${format ? format((i.end - i.start) / 1000) : ""}` },
      h("div", { class: "bar-label" }, i.link ? link(i.link, i.label) : i.label),
      h("div", { class: "bar-track" }, h("div", { class: ["bar-fill", i.tone], style: {
        marginLeft: `${(100 * (i.start - t0)) / span}%`, width: `${Math.max(0.6, (100 * (i.end - i.start)) / span)}%` } })),
      h("div", { class: "bar-value" }, format ? format((i.end - i.start) / 1000) : ""))));
}

// A table: columns are {label, value(row) → node|text, sort(row) → comparable, class}; click a header to sort.
export function table(columns, rows, { onRow, rowClass, id, emptyText = "Nothing here." } = {}) {
  if (!rows.length) return h("div", { class: "empty", id }, emptyText);
  let order = { col: -1, dir: 1 };
  const tbody = h("tbody");
  const fill = () => {
    clear(tbody);
    let data = rows;
    if (order.col >= 0) {
      const key = columns[order.col].sort || columns[order.col].value;
      data = [...rows].sort((a, b) => {
        const x = key(a), y = key(b);
        if (x === y) return 0;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : 1) * order.dir;
      });
    }
    for (const row of data) {
      const tr = h("tr", { class: [rowClass ? rowClass(row) : null, onRow ? "clickable" : null] },
        columns.map((c) => h("td", { class: c.class }, c.value(row))));
      if (onRow) tr.addEventListener("click", (e) => { if (!e.target.closest("a")) onRow(row, tr); });
      tbody.appendChild(tr);
    }
  };
  const head = h("tr", null, columns.map((c, i) => h("th", {
    class: [c.class, "sortable"], title: "Sort",
    onclick: () => { order = { col: i, dir: order.col === i ? -order.dir : 1 }; fill(); },
  }, c.label)));
  fill();
  return h("div", { class: "table-wrap" }, h("table", { class: "grid", id }, h("thead", null, head), tbody));
}

// A data grid from the API's {columns:[{name,type,masking}], rows:[[...]]}.
export function dataGrid(columnsIn, rows, { id } = {}) {
  if (!columnsIn.length) return empty("No columns.");
  const columns = columnsIn.map((c) => (typeof c === "string" ? { name: c } : c));
  const head = h("tr", null, columns.map((c) => h("th", { title: c.type || "" }, c.name,
    c.masking ? h("span", { class: "mask-tag", title: `masked: ${c.masking}` }, c.masking) : null)));
  const body = h("tbody", null, rows.map((r) => h("tr", null, r.map((v, i) =>
    h("td", { class: [typeof v === "number" ? "num" : null, columns[i] && columns[i].masking ? "masked" : null] }, cell(v))))));
  return h("div", { class: "table-wrap data" }, h("table", { class: "grid", id }, h("thead", null, head), body));
}

export function tabs(items, initial) {
  const bar = h("div", { class: "tabs", role: "tablist" });
  const body = h("div", { class: "tab-body" });
  const show = (i) => {
    [...bar.children].forEach((b, j) => b.classList.toggle("active", i === j));
    clear(body).appendChild(items[i].render());
  };
  items.forEach((t, i) => bar.appendChild(h("button", { type: "button", role: "tab", dataset: { tab: t.id }, onclick: () => show(i) }, t.label)));
  show(initial || 0);
  return h("div", null, bar, body);
}

export function setProject(name) {
  document.getElementById("project").textContent = name ? `· ${name}` : "";
}
