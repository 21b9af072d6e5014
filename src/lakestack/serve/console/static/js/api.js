// The JSON read API (/v1/...) with the viewer's API key on every request.
const KEY = "lakestack.apiKey";

export function getKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setKey(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, title, detail, type) {
    super(detail || title || `HTTP ${status}`);
    this.status = status;
    this.title = title || `HTTP ${status}`;
    this.detail = detail || "";
    this.type = type || "";
  }
}

function headers(extra) {
  const h = { Accept: "application/json", ...(extra || {}) };
  const key = getKey();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function fail(response) {
  let problem = {};
  try {
    problem = await response.json();
  } catch (_) {
    /* not a problem document */
  }
  return new ApiError(response.status, problem.title, problem.detail, problem.type);
}

async function send(path, init) {
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "Server unreachable", `${path}: ${err.message}`);
  }
  if (!response.ok) throw await fail(response);
  return response;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

export async function get(path, params) {
  const response = await send(path + query(params), { headers: headers() });
  return response.json();
}

export async function post(path, body) {
  const response = await send(path, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify(body),
  });
  return response.json();
}

export async function postBlob(path, body) {
  const response = await send(path, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "*/*" }),
    body: JSON.stringify(body),
  });
  return response.blob();
}

export const enc = encodeURIComponent;
