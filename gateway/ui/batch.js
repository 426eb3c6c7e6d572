// One batch: its fields, actions, details, and its log followed live with the line numbers kept.
import { api } from './api.js';
import { TERMINAL, badge, clear, duration, errorBox, fmtSeconds, fmtTime, h, toast } from './dom.js';
import { kill } from './batches.js';
import { gantt } from './charts.js';
import { watchBatches } from './events.js';

const MAX_LINES = 5000;

function field(label, value) {
  return [h('dt', {}, label), h('dd', {}, value === undefined || value === null || value === '' ? '–' : value)];
}

function appLink(batch) {
  if (!batch.appId) return '–';
  if (batch.appUrl && /^https?:\/\//i.test(batch.appUrl)) {
    return h('a', { href: batch.appUrl, rel: 'noopener noreferrer', target: '_blank' }, batch.appId);
  }
  return batch.appId;
}

export function batchView(main, [id], query, { navigate }) {
  const path = `/api/v1/batches/${encodeURIComponent(id)}`;
  let batch = null;
  let shownState = null;
  let stopEvents = null;
  let source = null;

  const title = h('h1', {}, 'Batch');
  const stateHolder = h('span', { id: 'batch-state', 'aria-live': 'polite' });
  const actions = h('div', { class: 'actions', role: 'group', 'aria-label': 'Batch actions' });
  const fields = h('dl', { class: 'fields-grid' });
  const info = h('pre', { class: 'info' });
  const detailsBox = h('div', { id: 'details' });
  const error = h('div', {});

  const logBox = h('div', { class: 'log', id: 'log', role: 'log', tabindex: '0', 'aria-label': 'Batch log' });
  const logStatus = h('span', { class: 'muted', id: 'log-status', 'aria-live': 'polite' }, '');
  const followBox = h('input', { type: 'checkbox', id: 'log-follow', checked: true });
  const fromInput = h('input', { id: 'log-from', type: 'number', min: '0', inputmode: 'numeric', value: query.get('from') || '' });
  const fromForm = h('form', { class: 'inline' },
    h('label', { for: 'log-from' }, 'From line'), fromInput, h('button', { type: 'submit' }, 'Go'));
  fromForm.addEventListener('submit', (event) => {
    event.preventDefault();
    openLog(Math.max(0, Number(fromInput.value) || 0));
  });

  main.append(
    h('p', { class: 'crumbs' }, h('a', { href: '/ui/batches', 'data-nav': true }, '← Batches')),
    h('div', { class: 'title start' }, title, stateHolder), error, actions,
    h('section', { 'aria-labelledby': 'fields-title' }, h('h2', { id: 'fields-title', class: 'sr-only' }, 'Fields'), fields,
      h('details', {}, h('summary', {}, 'batchInfo'), info)),
    h('section', { 'aria-labelledby': 'log-title', class: 'log-section' },
      h('div', { class: 'log-head' }, h('h2', { id: 'log-title' }, 'Log'),
        h('label', { class: 'check' }, followBox, ' Follow'), fromForm, logStatus),
      logBox),
    h('section', { 'aria-labelledby': 'details-title' }, h('h2', { id: 'details-title' }, 'Details'), detailsBox));

  // --- the log ---------------------------------------------------------------------------
  let pending = [];
  let scheduled = false;
  let lineCount = 0;

  function flush() {
    scheduled = false;
    const fragment = document.createDocumentFragment();
    for (const [n, text] of pending) {
      fragment.append(h('div', { class: 'line', dataset: { n: String(n) } },
        h('span', { class: 'ln', 'aria-hidden': 'true' }, String(n)), h('span', { class: 'tx' }, text)));
    }
    lineCount += pending.length;
    pending = [];
    logBox.append(fragment);
    while (lineCount > MAX_LINES) { logBox.firstChild.remove(); lineCount -= 1; }
    if (followBox.checked) logBox.scrollTop = logBox.scrollHeight;
  }

  function openLog(from) {
    if (source) source.close();
    clear(logBox);
    lineCount = 0;
    pending = [];
    logStatus.textContent = 'following…';
    source = new EventSource(`${path}/log/follow?from=${from}`);
    source.addEventListener('log', (event) => {
      pending.push([Number(event.lastEventId), event.data]);
      if (!scheduled) { scheduled = true; requestAnimationFrame(flush); }
    });
    source.addEventListener('end', (event) => {
      source.close();
      source = null;
      flush();
      logStatus.textContent = 'end of log';
      setBatch(JSON.parse(event.data));
    });
    source.onerror = () => {
      // EventSource reconnects by itself and resumes after the last line (Last-Event-ID).
      if (source && source.readyState === EventSource.CLOSED) logStatus.textContent = 'log stream closed';
      else logStatus.textContent = 'reconnecting…';
    };
    source.onopen = () => { logStatus.textContent = 'following…'; };
  }

  // --- fields, actions, details -----------------------------------------------------------
  function actionButton(label, handler, kind = '') {
    const button = h('button', { type: 'button', class: kind, 'data-action': label.toLowerCase() }, label);
    button.addEventListener('click', async () => {
      button.disabled = true;
      try { await handler(); } catch (err) { toast(err.message, 'error'); } finally { button.disabled = false; }
    });
    return button;
  }

  function renderActions() {
    const st = batch.state;
    const buttons = [];
    if (!TERMINAL.has(st)) {
      buttons.push(actionButton('Kill', async () => { if (await kill(batch)) await load(); }, 'danger'));
    }
    if (st === 'INITIALIZED' || st === 'RUNNING') {
      buttons.push(actionButton('Pause', async () => { setBatch(await api('POST', `${path}/pause`)); toast('Paused'); }));
    }
    if (st === 'PAUSED') {
      buttons.push(actionButton('Resume', async () => { setBatch(await api('POST', `${path}/resume`)); toast('Resumed'); }));
    }
    if (TERMINAL.has(st)) {
      buttons.push(actionButton('Restart', async () => {
        const fresh = await api('POST', `${path}/restart`);
        toast(`Restarted as ${fresh.id}`);
        navigate(`/ui/batches/${encodeURIComponent(fresh.id)}`);
      }));
    }
    const focusedAction = document.activeElement?.dataset?.action;
    actions.replaceChildren(...buttons);
    if (focusedAction) actions.querySelector(`[data-action="${focusedAction}"]`)?.focus();
  }

  function setBatch(b) {
    batch = b;
    title.textContent = b.name || b.id;
    stateHolder.replaceChildren(badge(b.state));
    const bi = b.batchInfo || {};
    clear(fields).append(
      ...field('Id', h('span', { class: 'mono' }, b.id)), ...field('User', b.user), ...field('Type', b.batchType),
      ...field('State', b.state), ...field('App id', appLink(b)), ...field('App state', b.appState),
      ...field('Diagnostic', b.appDiagnostic), ...field('Instance', b.kyuubiInstance),
      ...field('Created', fmtTime(b.createTime)), ...field('Started', fmtTime(b.appStartTime)),
      ...field('Ended', fmtTime(b.endTime)), ...field('Duration', duration(b.createTime, b.endTime)),
      ...(bi.restartOf ? field('Restart of', h('a', { href: `/ui/batches/${encodeURIComponent(bi.restartOf)}`, 'data-nav': true }, bi.restartOf)) : []));
    info.textContent = JSON.stringify(bi, null, 2);
    if (b.state !== shownState) {
      shownState = b.state;
      renderActions();
      loadDetails();
    }
    if (TERMINAL.has(b.state) && stopEvents) { stopEvents(); stopEvents = null; }
  }

  async function loadDetails() {
    let d;
    try { d = await api('GET', `${path}/details`); } catch (err) { detailsBox.replaceChildren(errorBox(err.message)); return; }
    const steps = h('table', { class: 'compact' },
      h('thead', {}, h('tr', {}, ['Step', 'Kind', 'Started', 'Duration'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, d.steps.map((st) => h('tr', {},
        h('td', { 'data-label': 'Step' }, st.name), h('td', { 'data-label': 'Kind' }, st.kind),
        h('td', { 'data-label': 'Started' }, fmtTime(st.start)),
        h('td', { 'data-label': 'Duration' }, st.duration === null || st.duration === undefined ? '–' : fmtSeconds(st.duration / 1000))))));
    const counters = h('dl', { class: 'fields-grid' }, Object.entries(d.counters || {}).map(([k, v]) => field(k, typeof v === 'object' ? JSON.stringify(v) : String(v))));
    const attempts = d.attempts.length > 1 ? h('ol', { class: 'attempts' }, d.attempts.map((a) => h('li', {},
      a.id === id ? h('strong', {}, a.id) : h('a', { href: `/ui/batches/${encodeURIComponent(a.id)}`, 'data-nav': true }, a.id), ' ', badge(a.state)))) : null;
    const timed = d.steps.filter((st) => st.start);
    const timeline = timed.length ? gantt(d.steps.map((st) => ({ label: st.name, start: st.start, end: st.end, kind: st.kind })),
      { id: 'steps-timeline', label: `Timeline of the steps of batch ${id}` }) : null;
    detailsBox.replaceChildren(...[timeline ? [h('h3', {}, 'Timeline'), timeline] : [], h('h3', {}, 'Steps'), steps,
      Object.keys(d.counters || {}).length ? [h('h3', {}, 'Counters'), counters] : [],
      attempts ? [h('h3', {}, 'Attempts'), attempts] : []].flat());
  }

  async function load() {
    try {
      setBatch(await api('GET', path));
      error.replaceChildren();
    } catch (err) {
      error.replaceChildren(errorBox(err.message));
      throw err;
    }
  }

  (async () => {
    try { await load(); } catch { return; }
    const from = query.get('from');
    const known = Number((batch.batchInfo || {}).logLines) || 0;
    const start = from !== null && from !== '' ? Math.max(0, Number(from) || 0) : Math.max(0, known - MAX_LINES);
    fromInput.value = String(start);
    openLog(start);
    if (!TERMINAL.has(batch.state)) {
      const seen = (b) => { if (b.id === batch.id) setBatch(b); };
      stopEvents = watchBatches({ ids: [batch.id], onSnapshot: (list) => list.forEach(seen), onBatch: seen });
    }
  })();

  return () => {
    if (source) source.close();
    if (stopEvents) stopEvents();
  };
}
