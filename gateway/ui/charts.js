// The page's pictures, drawn as plain SVG (docs/ui.md says why): batches over time, running against the
// limits, timelines (Gantt) and a schedule's ticks on a time axis. Every mark carries its numbers as data-*
// attributes and a <title>, so a tooltip, a screen reader and a test read the same data. Colours come
// from the stylesheet (the st-* classes), so light and dark follow the system.
import { fmtSeconds, fmtTime, h, s, timeParts, zoneOffset } from './dom.js';

export const STATE_ORDER = ['FINISHED', 'ERROR', 'CANCELED', 'RUNNING', 'PENDING', 'PAUSED', 'INITIALIZED'];
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const SECOND = 1000;
const STEPS = [SECOND, 2 * SECOND, 5 * SECOND, 10 * SECOND, 30 * SECOND, MINUTE, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 7 * DAY];

// Ticks for [start, end) at round wall-clock times of the zone (the viewer's unless named), at most `max`.
export function timeTicks(start, end, { zone, max = 7 } = {}) {
  const step = STEPS.find((st) => (end - start) / st <= max) || 30 * DAY;
  const offset = zoneOffset(start, zone);
  const ticks = [];
  for (let t = Math.ceil((start + offset) / step) * step - offset; t <= end; t += step) ticks.push(t);
  const label = (t) => {
    const p = timeParts(t, zone);
    if (step >= DAY) return `${p.month}-${p.day}`;
    if (step < MINUTE) return `${p.hour}:${p.minute}:${p.second}`;
    return end - start > DAY ? `${p.month}-${p.day} ${p.hour}:${p.minute}` : `${p.hour}:${p.minute}`;
  };
  return ticks.map((t) => ({ t, label: label(t) }));
}

function axis(ticks, x, y, height) {
  return s('g', { class: 'axis' }, ticks.map(({ t, label }) => s('g', { transform: `translate(${x(t)} 0)` },
    s('line', { y1: String(y), y2: String(y + height), class: 'grid' }),
    s('text', { y: String(y + height + 14), 'text-anchor': 'middle' }, label))));
}

function span(ms) {
  const [unit, size] = ms % DAY === 0 ? ['day', DAY] : ms % HOUR === 0 ? ['hour', HOUR] : ['minute', MINUTE];
  const n = ms / size;
  return n === 1 ? `one ${unit}` : `${n} ${unit}s`;
}

function caption(text) {
  return h('p', { class: 'chart-caption muted small' }, text);
}

// Stacked bars of the batches created in each bucket, by state, with the batches running and queued at
// some moment of each bucket as lines over them.
export function batchesOverTime(stats, { label = 'Batches over time' } = {}) {
  const W = 760; const H = 240; const L = 36; const R = 12; const T = 12; const B = 26;
  const { bucket, buckets } = stats;
  const start = stats.from; const end = buckets.length ? buckets[buckets.length - 1].start + bucket : stats.to;
  const totals = buckets.map((b) => Object.values(b.created).reduce((a, n) => a + n, 0));
  const top = Math.max(1, ...totals, ...buckets.map((b) => Math.max(b.running, b.queued)));
  const x = (t) => L + ((t - start) / (end - start)) * (W - L - R);
  const y = (n) => T + (H - T - B) * (1 - n / top);
  const barW = Math.max(1, x(start + bucket) - x(start) - 2);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': label });
  for (const n of [0, Math.ceil(top / 2), top]) {
    svg.append(s('g', { class: 'axis' }, s('line', { x1: String(L), x2: String(W - R), y1: String(y(n)), y2: String(y(n)), class: 'grid' }),
      s('text', { x: String(L - 6), y: String(y(n) + 4), 'text-anchor': 'end' }, String(n))));
  }
  svg.append(axis(timeTicks(start, end), x, T, H - T - B));
  buckets.forEach((b, i) => {
    let base = 0;
    const group = s('g', { class: 'bucket', 'data-start': String(b.start), 'data-created': String(totals[i]),
      'data-running': String(b.running), 'data-queued': String(b.queued) },
    s('title', {}, `${fmtTime(b.start)}: ${totals[i]} created (${Object.entries(b.created).map(([k, v]) => `${v} ${k}`).join(', ') || 'none'}); `
      + `${b.running} running, ${b.queued} queued`));
    for (const state of STATE_ORDER) {
      const n = b.created[state] || 0;
      if (!n) continue;
      group.append(s('rect', { class: `bar st-${state.toLowerCase()}`, 'data-state': state, 'data-count': String(n),
        x: String(x(b.start) + 1), width: String(barW), y: String(y(base + n)), height: String(y(base) - y(base + n)) }));
      base += n;
    }
    svg.append(group);
  });
  for (const kind of ['queued', 'running']) {
    const points = buckets.map((b) => `${x(b.start + bucket / 2)},${y(b[kind])}`).join(' ');
    svg.append(s('polyline', { class: `line line-${kind}`, points }));
  }
  const legend = h('ul', { class: 'legend' },
    STATE_ORDER.filter((st) => buckets.some((b) => b.created[st])).map((st) => h('li', { class: `st-${st.toLowerCase()}` }, h('span', { class: 'swatch' }), `created, now ${st}`)),
    h('li', { class: 'line-running' }, h('span', { class: 'swatch line' }), 'running'),
    h('li', { class: 'line-queued' }, h('span', { class: 'swatch line' }), 'queued'));
  const zone = timeParts(start).zone;
  return h('figure', { class: 'chart-box', id: 'chart-over-time' }, svg, legend,
    caption(`Each bar: the batches created in ${span(bucket)}, by their state now. Times in ${zone}, your zone.`));
}

// One bar per row: running (solid) and queued (light) against its limit (a mark; none: no limit).
export function limitBars(rows, { label = 'Running against the limits' } = {}) {
  const W = 760; const rowH = 28; const L = 150; const R = 170;
  // A row without a limit never looks full: the scale leaves room above the largest count.
  const largest = Math.max(...rows.map((r) => Math.max(r.limit, r.running + r.queued)));
  const scale = Math.max(4, rows.some((r) => !r.limit) ? Math.ceil(largest * 1.25) : largest);
  const x = (n) => L + (n / scale) * (W - L - R);
  const svg = s('svg', { viewBox: `0 0 ${W} ${rows.length * rowH + 8}`, class: 'chart limits', role: 'img', 'aria-label': label });
  rows.forEach((r, i) => {
    const y = 4 + i * rowH;
    const over = r.limit && r.running >= r.limit;
    const text = `${r.running} running, ${r.queued} queued, ${r.limit ? `limit ${r.limit}` : 'no limit'}`;
    svg.append(s('g', { class: `limit${over ? ' full' : ''}`, 'data-name': r.name, 'data-running': String(r.running),
      'data-queued': String(r.queued), 'data-limit': String(r.limit) },
    s('title', {}, `${r.name}: ${text}`),
    s('text', { x: '0', y: String(y + 17), class: 'name' }, r.name),
    s('rect', { class: 'track', x: String(L), y: String(y + 4), width: String(W - L - R), height: '16' }),
    s('rect', { class: 'running', x: String(L), y: String(y + 4), width: String(x(r.running) - L), height: '16' }),
    s('rect', { class: 'queued', x: String(x(r.running)), y: String(y + 4), width: String(x(r.running + r.queued) - x(r.running)), height: '16' }),
    r.limit ? s('line', { class: 'cap', x1: String(x(r.limit)), x2: String(x(r.limit)), y1: String(y), y2: String(y + 24) }) : null,
    s('text', { x: String(W - R + 8), y: String(y + 17), class: 'value' }, text)));
  });
  return h('figure', { class: 'chart-box', id: 'chart-limits' }, svg,
    caption('Batches counted against each limit (starting, running, and running ones paused), and those queued behind it.'));
}

// A timeline (Gantt): one bar per row from start to end (or now), in the row's state's colour.
export function gantt(rows, { label = 'Timeline', id, now = Date.now() } = {}) {
  const W = 760; const rowH = 24; const L = 160; const R = 16; const T = 4; const B = 24;
  const timed = rows.filter((r) => r.start);
  const start = Math.min(...timed.map((r) => r.start), now);
  const end = Math.max(start + 1000, ...timed.map((r) => r.end || now));
  const x = (t) => L + ((t - start) / (end - start)) * (W - L - R);
  const height = T + rows.length * rowH + B;
  const svg = s('svg', { viewBox: `0 0 ${W} ${height}`, class: 'chart gantt', role: 'img', 'aria-label': label });
  svg.append(axis(timeTicks(start, end, { max: 6 }), x, T, rows.length * rowH));
  rows.forEach((r, i) => {
    const y = T + i * rowH;
    const stop = r.end || now;
    const title = r.start ? `${r.label}: ${fmtTime(r.start)} to ${r.end ? fmtTime(r.end) : 'now'} (${fmtSeconds((stop - r.start) / 1000)})`
      : `${r.label}: not started`;
    const bar = r.start ? s('rect', { class: `bar st-${String(r.state || r.kind || '').toLowerCase()}${r.end ? '' : ' open'}`,
      x: String(x(r.start)), y: String(y + 5), width: String(Math.max(2, x(stop) - x(r.start))), height: String(rowH - 10) }) : null;
    const name = s('text', { x: '0', y: String(y + 16), class: 'name' }, r.label.length > 24 ? `${r.label.slice(0, 23)}…` : r.label);
    const took = r.start ? fmtSeconds((stop - r.start) / 1000) : 'waiting';
    // The duration after the bar; before it when the bar reaches the right edge; inside it when both are full.
    let at = r.start ? x(stop) + 6 : L;
    let anchor = 'start';
    let where = 'value';
    if (r.start && x(stop) > W - R - 60) {
      anchor = 'end';
      if (x(r.start) - L > 60) at = x(r.start) - 6;
      else { at = x(stop) - 6; where = 'value inside'; }
    }
    const value = s('text', { x: String(at), y: String(y + 16), 'text-anchor': anchor, class: where }, took);
    const group = s('g', { class: 'row', 'data-name': r.label, 'data-start': String(r.start || 0), 'data-end': String(r.end || 0),
      'data-state': r.state || '' }, s('title', {}, title), name, bar, value);
    svg.append(r.href ? s('a', { href: r.href, 'data-nav': true, 'aria-label': title }, group) : group);
  });
  return h('figure', { class: 'chart-box', id }, svg,
    caption(`Times in ${timeParts(start).zone}, your zone.`));
}

// A schedule's ticks on a time axis: the past ones (filled, by outcome) and the next ones (hollow), with
// the axis in the schedule's own zone.
export function tickAxis({ past, next, zone, now = Date.now(), label = 'Schedule ticks' }) {
  const W = 520; const H = 64; const L = 10; const R = 10;
  const times = [...past.map((t) => t.fireTime), ...next, now];
  const start = Math.min(...times); const end = Math.max(start + MINUTE, ...times);
  const pad = (end - start) * 0.04;
  const x = (t) => L + ((t - start + pad) / (end - start + 2 * pad)) * (W - L - R);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart ticks', role: 'img', 'aria-label': label });
  svg.append(s('line', { class: 'baseline', x1: String(L), x2: String(W - R), y1: '24', y2: '24' }));
  svg.append(axis(timeTicks(start - pad, end + pad, { zone, max: 5 }), x, 14, 20));
  svg.append(s('g', { class: 'now' }, s('title', {}, `now: ${fmtTime(now, zone)}`),
    s('line', { x1: String(x(now)), x2: String(x(now)), y1: '8', y2: '40' })));
  for (const tick of past) {
    svg.append(s('circle', { class: `tick past st-${String(tick.outcome).toLowerCase()}`, cx: String(x(tick.fireTime)), cy: '24', r: '6',
      'data-time': String(tick.fireTime), 'data-outcome': tick.outcome },
    s('title', {}, `${fmtTime(tick.fireTime, zone)} (${fmtTime(tick.fireTime)} your time): ${tick.outcome}`)));
  }
  for (const t of next) {
    svg.append(s('circle', { class: 'tick next', cx: String(x(t)), cy: '24', r: '6', 'data-time': String(t) },
      s('title', {}, `next: ${fmtTime(t, zone)} (${fmtTime(t)} your time)`)));
  }
  return h('figure', { class: 'chart-box ticks-box' }, svg,
    caption(`Axis in ${zone} (${timeParts(now, zone).zone}); filled: past ticks by outcome, hollow: the next ones.`));
}
