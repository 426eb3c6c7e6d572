// The batches list: filters and paging in the URL; states change as the gateway reports them (its batch
// events), and the page is read again when a change may add or remove a row.
import { api, batchTypes, session } from './api.js';
import { STATES, TERMINAL, badge, clear, duration, errorBox, every, fmtTime, h, toast } from './dom.js';
import { watchBatches } from './events.js';

const PAGE_SIZES = [20, 50, 100];
const SORTS = [['createTime', 'Created'], ['endTime', 'Ended'], ['name', 'Name'], ['duration', 'Duration']];

function select(id, name, label, options, value) {
  const el = h('select', { id, name },
    options.map(([v, text]) => h('option', { value: v, selected: v === value }, text)));
  return h('div', {}, h('label', { for: id }, label), el);
}

export async function kill(batch) {
  if (!window.confirm(`Kill batch ${batch.name || batch.id}?`)) return null;
  const result = await api('DELETE', `/api/v1/batches/${encodeURIComponent(batch.id)}`);
  toast(result.msg, result.success ? 'info' : 'error');
  return result;
}

export function batchesView(main, _params, query, { navigate }) {
  const q = Object.fromEntries(query.entries());
  const size = Number(q.size) || 20;
  const from = Math.max(0, Number(q.from) || 0);
  const states = (q.state || '').split(',').filter(Boolean);

  const stateBoxes = STATES.map((st) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', name: 'state', value: st, checked: states.includes(st) }), ' ', badge(st)));
  const typeSelect = select('f-type', 'type', 'Type', [['', 'any']], q.type || '');
  batchTypes().then((found) => typeSelect.querySelector('select').append(
    ...found.map((t) => h('option', { value: t, selected: t === q.type }, t)))).catch(() => {});
  const name = h('input', { id: 'f-key', name: 'key', type: 'search', value: q.key || '', placeholder: 'id prefix or name words' });
  const user = session.admin ? h('div', {}, h('label', { for: 'f-user' }, 'User'),
    h('input', { id: 'f-user', name: 'user', value: q.user || '' })) : null;
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter batches' },
    h('fieldset', { class: 'states' }, h('legend', {}, 'State'), stateBoxes),
    h('div', { class: 'fields' },
      typeSelect,
      h('div', {}, h('label', { for: 'f-key' }, 'Search'), name),
      user,
      select('f-sort', 'sort', 'Sort', SORTS, q.sort || 'createTime'),
      select('f-order', 'order', 'Order', [['desc', 'newest first'], ['asc', 'oldest first']], q.order || 'desc'),
      select('f-size', 'size', 'Per page', PAGE_SIZES.map((n) => [String(n), String(n)]), String(size))),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, 'Apply'),
      h('a', { href: '/ui/batches', 'data-nav': true, class: 'button' }, 'Clear')));

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const next = new URLSearchParams();
    const picked = data.getAll('state');
    if (picked.length) next.set('state', picked.join(','));
    for (const key of ['type', 'key', 'user', 'sort', 'order', 'size']) {
      const v = String(data.get(key) || '').trim();
      const isDefault = { sort: 'createTime', order: 'desc', size: '20' }[key] === v;
      if (v && !isDefault) next.set(key, v);
    }
    navigate(`/ui/batches${next.toString() ? `?${next}` : ''}`);
  });

  const status = h('p', { class: 'muted', id: 'list-status', 'aria-live': 'polite' }, 'Loading…');
  const tbody = h('tbody', {});
  const table = h('table', { class: 'batches', 'aria-describedby': 'list-status' },
    h('caption', { class: 'sr-only' }, 'Batches'),
    h('thead', {}, h('tr', {}, ['Name', 'State', 'Type', 'User', 'Created', 'Duration', ''].map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  const error = h('div', {});
  main.append(
    h('div', { class: 'title' }, h('h1', {}, 'Batches'), h('a', { href: '/ui/submit', 'data-nav': true, class: 'button primary' }, 'Submit a batch')),
    h('details', { class: 'filter-box', open: Boolean(query.toString()) || window.innerWidth > 720 },
      h('summary', {}, 'Filters'), form),
    error, status, h('div', { class: 'table-wrap' }, table), pager);

  const pageLink = (offset, label, disabled) => {
    const next = new URLSearchParams(query);
    next.set('from', String(offset));
    return disabled ? h('span', { class: 'button', 'aria-disabled': 'true' }, label)
      : h('a', { href: `/ui/batches?${next}`, 'data-nav': true, class: 'button' }, label);
  };

  let shownIds = '';
  const rows = new Map();

  function row(b) {
    const killButton = h('button', { type: 'button', class: 'small danger', 'data-action': 'kill', 'aria-label': `Kill ${b.name || b.id}` }, 'Kill');
    killButton.addEventListener('click', async () => {
      try { await kill(b); await refresh(); } catch (err) { toast(err.message, 'error'); }
    });
    const tr = h('tr', { dataset: { id: b.id } },
      h('td', { 'data-label': 'Name' }, h('div', {},
        h('a', { href: `/ui/batches/${encodeURIComponent(b.id)}`, 'data-nav': true }, b.name || b.id.slice(0, 8)),
        h('div', { class: 'muted mono small' }, b.id))),
      h('td', { 'data-label': 'State', class: 'state' }, badge(b.state)),
      h('td', { 'data-label': 'Type' }, b.batchType),
      h('td', { 'data-label': 'User' }, b.user),
      h('td', { 'data-label': 'Created' }, fmtTime(b.createTime)),
      h('td', { 'data-label': 'Duration', class: 'duration' }, duration(b.createTime, b.endTime)),
      h('td', { class: 'row-actions' }, killButton));
    return { tr, killButton, created: b.createTime };
  }

  function update(b) {
    const r = rows.get(b.id);
    const cell = r.tr.querySelector('.state');
    if (cell.firstChild.dataset.state !== b.state) cell.replaceChildren(badge(b.state));
    r.tr.querySelector('.duration').textContent = duration(b.createTime, b.endTime);
    r.killButton.hidden = TERMINAL.has(b.state);
  }

  async function refresh() {
    const params = {
      from, size, desc: (q.order || 'desc') === 'desc', batchState: q.state, batchType: q.type, key: q.key,
      batchUser: q.user, sort: q.sort,
    };
    let page;
    try {
      page = await api('GET', '/api/v1/batches', { params });
      error.replaceChildren();
    } catch (err) {
      error.replaceChildren(errorBox(err.message));
      throw err;
    }
    const ids = page.batches.map((b) => b.id).join(',');
    if (ids !== shownIds) {
      const focused = document.activeElement?.closest('tr')?.dataset.id;
      clear(tbody);
      rows.clear();
      for (const b of page.batches) {
        const r = row(b);
        rows.set(b.id, r);
        tbody.append(r.tr);
      }
      shownIds = ids;
      if (focused && rows.has(focused)) rows.get(focused).tr.querySelector('a').focus();
    }
    page.batches.forEach(update);
    table.hidden = page.batches.length === 0;
    status.textContent = page.total === 0 ? 'No batches match.'
      : `${page.from + 1}–${page.from + page.batches.length} of ${page.total}`;
    pager.replaceChildren(
      pageLink(Math.max(0, from - size), '← Previous', from === 0),
      pageLink(from + size, 'Next →', from + size >= page.total));
  }

  // A change to a row in view updates it in place; one that may add or remove rows (a new batch on the
  // first page, a state leaving the filter) reads the page again, at most every 300 ms.
  let again = null;
  const reread = () => {
    if (!again) again = setTimeout(() => { again = null; refresh().catch(() => {}); }, 300);
  };
  const changed = (b) => {
    if (rows.has(b.id)) {
      update(b);
      if (states.length && !states.includes(b.state)) reread();
    } else if (from === 0 || states.length) {
      reread();
    }
  };
  const stopEvents = watchBatches({ snapshot: false, onBatch: changed });
  const stopSafety = every(30_000, refresh); // a safety net only: the events carry the changes
  const ticking = setInterval(() => {
    for (const [, r] of rows) {
      if (!r.tr.querySelector('.badge') || TERMINAL.has(r.tr.querySelector('.badge').dataset.state)) continue;
      r.tr.querySelector('.duration').textContent = duration(r.created, 0);
    }
  }, 1000);
  return () => { stopEvents(); stopSafety(); clearInterval(ticking); clearTimeout(again); };
}
