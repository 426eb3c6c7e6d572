// Calls the gateway's JSON API with the session cookie. Writes carry the session's CSRF token.
// X-Requested-With makes a 401 come back with a Bearer challenge, so the browser never pops up its
// own password dialog over the page.

export const session = { user: null, admin: false, csrf: null, expiresAt: 0 };

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let onUnauthorized = () => {};
export function whenUnauthorized(fn) { onUnauthorized = fn; }

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

export async function api(method, path, { json, form, params, auth } = {}) {
  const headers = { 'X-Requested-With': 'fetch', Accept: 'application/json' };
  if (method !== 'GET' && session.csrf) headers['X-CSRF-Token'] = session.csrf;
  if (auth) headers.Authorization = auth;
  let body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  let resp;
  try {
    resp = await fetch(path + query(params), { method, headers, body, credentials: 'same-origin', cache: 'no-store' });
  } catch (err) {
    throw new ApiError(0, 'cannot reach the gateway; check the connection');
  }
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!resp.ok) {
    const message = (data && data.message) || `${resp.status} ${resp.statusText}`;
    if (resp.status === 401 && !path.startsWith('/api/v1/sessions')) onUnauthorized(message);
    throw new ApiError(resp.status, message);
  }
  return data;
}

function basic(user, password) {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return `Basic ${btoa(binary)}`;
}

function remember(info) {
  session.user = info.user;
  session.admin = Boolean(info.admin);
  session.csrf = info.csrfToken;
  session.expiresAt = info.expiresAt;
}

export async function login(user, password) {
  const token = await api('POST', '/api/v1/sessions', { auth: basic(user, password) });
  remember({ ...token, admin: false });
  const info = await api('GET', '/api/v1/sessions/current');
  remember(info);
  return info;
}

export async function restore() {
  try {
    remember(await api('GET', '/api/v1/sessions/current'));
    return true;
  } catch (err) {
    if (err.status === 401 || err.status === 400) return false;
    throw err;
  }
}

export async function logout() {
  try {
    await api('DELETE', '/api/v1/sessions/current');
  } finally {
    session.user = null;
    session.csrf = null;
    session.admin = false;
  }
}

// The batch types this gateway accepts, from GET /api/v1/engines: asked once per page load (again after
// a failure). The page holds no list of its own.
let batchTypesAsked = null;
export function batchTypes() {
  if (!batchTypesAsked) {
    batchTypesAsked = api('GET', '/api/v1/engines').then((found) => found.batchTypes);
    batchTypesAsked.catch(() => { batchTypesAsked = null; });
  }
  return batchTypesAsked;
}
