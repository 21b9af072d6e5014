// The console's shell: the API key box, the navigation and a hash router (#/page/arg).
import { getKey, setKey } from "./api.js";
import { clear, errorBox, loading, setProject } from "./dom.js";
import * as overview from "./pages/overview.js";
import * as datasets from "./pages/datasets.js";
import * as lineage from "./pages/lineage.js";
import * as runs from "./pages/runs.js";
import * as quality from "./pages/quality.js";
import * as quarantine from "./pages/quarantine.js";
import * as sql from "./pages/sql.js";

const PAGES = { "": overview, datasets, lineage, runs, quality, quarantine, sql };
let generation = 0;

function parse() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, search] = raw.split("?");
  const [page, ...rest] = path.split("/");
  const arg = rest.length ? decodeURIComponent(rest.join("/")) : null;
  return { page: page || "", arg, params: new URLSearchParams(search || "") };
}

async function route() {
  const { page, arg, params } = parse();
  const module = PAGES[page] || overview;
  const name = page || "overview";
  for (const a of document.querySelectorAll("#nav a[data-page]")) a.classList.toggle("active", a.dataset.page === name);
  const main = document.getElementById("main");
  const mine = ++generation;
  clear(main).appendChild(loading());
  main.dataset.page = name;
  main.dataset.ready = "false";
  const view = document.createElement("div");
  view.className = "view";
  try {
    await module.render(view, arg, params);
  } catch (err) {
    view.replaceChildren(errorBox(err));
    if (err && err.status === 401) document.getElementById("apikey").focus();
  }
  if (mine !== generation) return; // a newer navigation won
  clear(main).appendChild(view);
  main.dataset.route = location.hash;
  main.dataset.ready = "true";
  document.title = `${module.title || "lakestack"} · lakestack`;
}

function keyBox() {
  const input = document.getElementById("apikey");
  const whoami = document.getElementById("whoami");
  const show = () => {
    const k = getKey();
    whoami.textContent = k ? `key ${k.split("_").slice(0, 2).join("_")}…` : "no key";
  };
  input.value = getKey();
  show();
  document.getElementById("keyform").addEventListener("submit", (e) => {
    e.preventDefault();
    setKey(input.value.trim());
    show();
    route();
  });
  document.getElementById("keyclear").addEventListener("click", () => {
    input.value = "";
    setKey("");
    show();
    route();
  });
}

async function project() {
  try {
    const health = await (await fetch("/health")).json(); // open: no key, no data
    setProject(health.project);
  } catch (_) {
    /* the pages say what is wrong */
  }
}

window.addEventListener("hashchange", route);
project();
keyBox();
route();
