// Small DOM helpers. Text always goes in as text nodes: nothing from the API is parsed as HTML.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.setAttribute('class', v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

const pad = (n) => String(n).padStart(2, '0');

// Times: every one is shown with its zone, as an offset from UTC (UTC+1, UTC-5, UTC), in the viewer's
// zone unless a zone is named (a schedule's). The same words in every locale.
export const LOCAL_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone;
const formatters = new Map();

export function timeParts(ms, timeZone) {
  const key = timeZone || '';
  if (!formatters.has(key)) {
    formatters.set(key, new Intl.DateTimeFormat('en-GB', {
      timeZone: timeZone || undefined, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit',
      minute: '2-digit', second: '2-digit', hourCycle: 'h23', timeZoneName: 'shortOffset' }));
  }
  const parts = {};
  for (const part of formatters.get(key).formatToParts(new Date(ms))) parts[part.type] = part.value;
  parts.zone = parts.timeZoneName.replace(/^GMT/, 'UTC').replace(/^UTC[+-]0?0?$/, 'UTC');
  return parts;
}

export function fmtTime(ms, timeZone) {
  if (!ms) return '–';
  const p = timeParts(ms, timeZone);
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second} ${p.zone}`;
}

// Milliseconds to add to a UTC time to get the wall clock of the zone at that moment.
export function zoneOffset(ms, timeZone) {
  const p = timeParts(ms, timeZone);
  return Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second) - Math.floor(ms / 1000) * 1000;
}

// A time in a schedule's zone, with the viewer's own beside it when that reads differently.
export function zonedTime(ms, timeZone) {
  const there = fmtTime(ms, timeZone);
  const here = fmtTime(ms);
  return h('time', { datetime: new Date(ms).toISOString(), title: `${there} (${timeZone})` }, there,
    there === here ? null : h('span', { class: 'local muted' }, ` · ${here} your time`));
}

export function fmtSeconds(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m}m ${pad(Math.floor(seconds % 60))}s`;
  return `${Math.floor(m / 60)}h ${pad(m % 60)}m`;
}

export function duration(start, end) {
  if (!start) return '–';
  return fmtSeconds(Math.max(0, (end || Date.now()) - start) / 1000);
}

export const TERMINAL = new Set(['FINISHED', 'ERROR', 'CANCELED']);
export const STATES = ['INITIALIZED', 'PAUSED', 'PENDING', 'RUNNING', 'FINISHED', 'ERROR', 'CANCELED'];

export function badge(state) {
  return h('span', { class: `badge st-${String(state).toLowerCase()}`, dataset: { state } }, state);
}

// Run fn now and then every `ms` while the page is visible; the next run waits for the last one.
export function every(ms, fn) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    if (document.visibilityState === 'visible') {
      try { await fn(); } catch (err) { /* shown by fn's caller; keep polling */ }
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

let toastTimer = null;
export function toast(message, kind = 'info') {
  const el = document.getElementById('toast');
  el.textContent = message;
  el.dataset.kind = kind;
  el.classList.add('show');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove('show'), 5000);
}

export function errorBox(message) {
  return h('p', { class: 'error', role: 'alert' }, message);
}
