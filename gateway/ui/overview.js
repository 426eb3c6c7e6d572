// The overview: batches by state over time, and running against the limits. It redraws when batches
// change (the gateway's batch events), at most every two seconds, and moves its window every minute.
import { api } from './api.js';
import { errorBox, every, h } from './dom.js';
import { batchesOverTime, limitBars } from './charts.js';
import { watchBatches } from './events.js';

const HOUR = 3_600_000;
const RANGES = [['6h', 6 * HOUR, '15m', 'last 6 hours'], ['24h', 24 * HOUR, '1h', 'last 24 hours'],
  ['7d', 7 * 24 * HOUR, '6h', 'last 7 days']];

export function overviewView(main, _params, query) {
  const [name, span, bucket, words] = RANGES.find(([n]) => n === query.get('range')) || RANGES[1];
  const overTime = h('div', { id: 'over-time' }, h('p', { class: 'muted' }, 'Loading…'));
  const limitsBox = h('div', { id: 'limits' });
  const error = h('div', {});
  const range = h('nav', { class: 'range', 'aria-label': 'Time range' }, RANGES.map(([n, , , w]) =>
    h('a', { href: `/ui/overview?range=${n}`, 'data-nav': true, class: 'button small', 'aria-current': n === name ? 'true' : null, title: w }, n)));
  main.append(h('div', { class: 'title' }, h('h1', {}, 'Overview'), range), error,
    h('section', { 'aria-labelledby': 'over-time-title' }, h('h2', { id: 'over-time-title' }, `Batches, ${words}`), overTime),
    h('section', { 'aria-labelledby': 'limits-title' }, h('h2', { id: 'limits-title' }, 'Running against the limits'), limitsBox));

  async function load() {
    const to = Date.now();
    try {
      const [stats, limits] = await Promise.all([
        api('GET', '/api/v1/stats/batches', { params: { from: to - span, to, bucket } }),
        api('GET', '/api/v1/limits')]);
      overTime.replaceChildren(batchesOverTime(stats, { label: `Batches created per ${bucket}, ${words}, by state` }));
      limitsBox.replaceChildren(limitBars([
        { name: 'all batches', ...limits.total },
        ...limits.perType.map((t) => ({ name: t.batchType, ...t })),
        ...limits.perUser.map((u) => ({ name: `user ${u.user}`, ...u }))]));
      error.replaceChildren();
    } catch (err) {
      error.replaceChildren(errorBox(err.message));
    }
  }

  let timer = null;
  let last = 0;
  const soon = () => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; last = Date.now(); load(); }, Math.max(0, 2000 - (Date.now() - last)));
  };
  const stopEvents = watchBatches({ snapshot: false, onBatch: soon });
  const stopClock = every(60_000, load);
  return () => { stopEvents(); stopClock(); clearTimeout(timer); };
}
