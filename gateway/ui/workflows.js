// Jobs with their DAG, runs with live node states, schedules with their next fire times.
import { api } from './api.js';
import { badge, duration, errorBox, every, fmtTime, h, toast, zonedTime } from './dom.js';
import { drawDag, updateDag } from './dag.js';
import { gantt, tickAxis } from './charts.js';

const RUN_TERMINAL = new Set(['SUCCEEDED', 'FAILED', 'KILLED']);
const enc = encodeURIComponent;
const batchHref = (n) => (n.batchId ? `/ui/batches/${enc(n.batchId)}` : null);

function table(columns, rows, cls = 'batches') {
  return h('div', { class: 'table-wrap' }, h('table', { class: cls },
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows)));
}

function cell(label, ...content) {
  return h('td', { 'data-label': label }, ...content);
}

function runRow(run) {
  const done = run.nodes.filter((n) => n.state === 'SUCCEEDED').length;
  return h('tr', { dataset: { id: run.id } },
    cell('Run', h('a', { href: `/ui/runs/${enc(run.id)}`, 'data-nav': true, class: 'mono' }, run.id.slice(0, 8))),
    cell('Job', h('a', { href: `/ui/jobs/${enc(run.job)}`, 'data-nav': true }, run.job), ` v${run.version}`),
    cell('State', badge(run.state)), cell('Trigger', run.trigger), cell('Created', fmtTime(run.createTime)),
    cell('Duration', duration(run.startTime || run.createTime, run.endTime)), cell('Nodes', `${done}/${run.nodes.length}`));
}

// --- jobs ------------------------------------------------------------------------------------

function jobsView(main) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  main.append(h('h1', {}, 'Jobs'), body);
  (async () => {
    try {
      const page = await api('GET', '/api/v1/jobs', { params: { size: 200 } });
      body.replaceChildren(page.jobs.length ? table(['Name', 'Owner', 'Version', 'Nodes', 'Updated', 'Description'],
        page.jobs.map((j) => h('tr', {},
          cell('Name', h('a', { href: `/ui/jobs/${enc(j.name)}`, 'data-nav': true }, j.name)), cell('Owner', j.owner),
          cell('Version', String(j.version)), cell('Nodes', String(j.nodes.length)), cell('Updated', fmtTime(j.updateTime)),
          cell('Description', j.description || '')))) : h('p', { class: 'muted' }, 'No jobs yet. Create one with the API or `batchgate jobs create -f job.yaml`.'),
      h('p', { class: 'muted' }, `${page.jobs.length} of ${page.total}`));
    } catch (err) { body.replaceChildren(errorBox(err.message)); }
  })();
}

function jobView(main, [name], _query, { navigate }) {
  const head = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const runsBox = h('div', {});
  main.append(h('p', { class: 'crumbs' }, h('a', { href: '/ui/jobs', 'data-nav': true }, '← Jobs')),
    h('div', { class: 'title' }, h('h1', {}, name)), head,
    h('section', { 'aria-labelledby': 'job-runs' }, h('h2', { id: 'job-runs' }, 'Runs'), runsBox));
  (async () => {
    let job;
    try { job = await api('GET', `/api/v1/jobs/${enc(name)}`); } catch (err) { head.replaceChildren(errorBox(err.message)); return; }
    const vars = Object.entries(job.variables || {}).map(([k, v]) => h('div', {},
      h('label', { for: `var-${k}` }, k), h('input', { id: `var-${k}`, name: k, value: v })));
    const error = h('div', {});
    const form = h('form', { class: 'card', 'aria-label': 'Run this job' },
      vars.length ? h('div', { class: 'form-grid' }, vars) : null, error,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', 'data-action': 'trigger' }, 'Run now')));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const variables = Object.fromEntries(new FormData(form).entries());
      try {
        const run = await api('POST', `/api/v1/jobs/${enc(name)}/runs`, { json: { variables } });
        navigate(`/ui/runs/${enc(run.id)}`);
      } catch (err) { error.replaceChildren(errorBox(err.message)); }
    });
    head.replaceChildren(
      h('p', {}, `Version ${job.version} by ${job.owner}, updated ${fmtTime(job.updateTime)}. `, job.description || ''),
      drawDag(job.nodes.map((n) => ({ ...n, subtitle: `${n.request.batchType || ''} ${n.request.name || ''}`.trim() })), { label: `Graph of job ${job.name}` }),
      table(['Node', 'Type', 'Resource', 'After'], job.nodes.map((n) => h('tr', {},
        cell('Node', n.id), cell('Type', n.request.batchType || ''), cell('Resource', h('span', { class: 'mono small' }, n.request.resource || '')),
        cell('After', n.in.join(', ') || '–'))), 'compact'),
      form);
  })();
  return every(3000, async () => {
    const page = await api('GET', `/api/v1/jobs/${enc(name)}/runs`, { params: { size: 20 } });
    runsBox.replaceChildren(page.runs.length ? table(['Run', 'Job', 'State', 'Trigger', 'Created', 'Duration', 'Nodes'], page.runs.map(runRow))
      : h('p', { class: 'muted' }, 'No runs yet.'));
  });
}

// --- runs ------------------------------------------------------------------------------------

function runsView(main, _params, query) {
  const status = h('p', { class: 'muted', 'aria-live': 'polite' }, 'Loading…');
  const body = h('div', {});
  main.append(h('h1', {}, 'Runs'), status, body);
  return every(2000, async () => {
    try {
      const page = await api('GET', '/api/v1/runs', { params: { size: 50, job: query.get('job'), state: query.get('state') } });
      body.replaceChildren(page.runs.length ? table(['Run', 'Job', 'State', 'Trigger', 'Created', 'Duration', 'Nodes'], page.runs.map(runRow)) : '');
      status.textContent = page.total ? `${page.runs.length} of ${page.total}` : 'No runs.';
    } catch (err) { body.replaceChildren(errorBox(err.message)); throw err; }
  });
}

function runView(main, [id]) {
  const path = `/api/v1/runs/${enc(id)}`;
  const title = h('h1', {}, 'Run');
  const state = h('span', { id: 'run-state', 'aria-live': 'polite' });
  const info = h('p', {});
  const actions = h('div', { class: 'actions', role: 'group', 'aria-label': 'Run actions' });
  const graph = h('div', {});
  const timeline = h('div', { id: 'run-timeline' });
  const nodesBody = h('tbody', {});
  const error = h('div', {});
  main.append(h('p', { class: 'crumbs' }, h('a', { href: '/ui/runs', 'data-nav': true }, '← Runs')),
    h('div', { class: 'title start' }, title, state), info, error, actions, graph,
    h('h2', {}, 'Timeline'), timeline,
    h('div', { class: 'table-wrap' }, h('table', { class: 'compact', id: 'run-nodes' },
      h('thead', {}, h('tr', {}, ['Node', 'State', 'Batch', 'Attempt', 'Duration'].map((c) => h('th', { scope: 'col' }, c)))), nodesBody)));
  let drawn = false;
  let drawnTimeline = null;
  let source = null;
  let pending = null;
  let shown = null;

  function render(run) {
    title.textContent = `${run.job} run`;
    state.replaceChildren(badge(run.state));
    info.replaceChildren(`Version ${run.version}, triggered by ${run.submitUser} (${run.trigger}), attempt ${run.attempt}; started ${fmtTime(run.startTime || run.createTime)}, `,
      run.endTime ? `ended ${fmtTime(run.endTime)}` : 'running', ` (${duration(run.startTime || run.createTime, run.endTime)}).`);
    if (!drawn) {
      graph.replaceChildren(drawDag(run.nodes, { label: `Graph of run ${run.id}`, href: batchHref }));
      drawn = true;
    } else {
      updateDag(graph, run.nodes, batchHref);
    }
    // Redrawn only when a node changed: a running node's open bar grows at the next change or load.
    const shape = JSON.stringify(run.nodes.map((n) => [n.id, n.state, n.startTime, n.endTime]));
    if (shape !== drawnTimeline) {
      drawnTimeline = shape;
      timeline.replaceChildren(gantt(run.nodes.map((n) => ({ label: n.id, start: n.startTime, end: n.endTime, state: n.state,
        href: batchHref(n) })), { id: 'run-gantt', label: `Timeline of the nodes of run ${run.id}` }));
    }
    nodesBody.replaceChildren(...run.nodes.map((n) => h('tr', { dataset: { node: n.id } },
      cell('Node', n.id), cell('State', badge(n.state)),
      cell('Batch', n.batchId ? h('a', { href: batchHref(n), 'data-nav': true, class: 'mono' }, n.batchId.slice(0, 8)) : '–'),
      cell('Attempt', String(n.attempt)), cell('Duration', duration(n.startTime, n.endTime)))));
    if (run.state !== shown) {
      shown = run.state;
      renderActions(run);
    }
  }

  function button(label, action) {
    const b = h('button', { type: 'button', 'data-action': action, class: action === 'cancel' ? 'danger' : '' }, label);
    b.addEventListener('click', async () => {
      if (action === 'cancel' && !window.confirm('Cancel this run?')) return;
      b.disabled = true;
      try { render(await api('POST', `${path}/${action}`)); toast(`${label}: done`); } catch (err) { toast(err.message, 'error'); } finally { b.disabled = false; }
      if (!source) follow();
    });
    return b;
  }

  function renderActions(run) {
    const list = [];
    if (!RUN_TERMINAL.has(run.state)) list.push(button('Cancel', 'cancel'));
    if (run.state === 'RUNNING' || run.state === 'PREPARING') list.push(button('Pause', 'pause'));
    if (run.state === 'PAUSED') list.push(button('Resume', 'resume'));
    if (run.state === 'FAILED' || run.state === 'KILLED') list.push(button('Retry', 'retry'));
    actions.replaceChildren(...list);
  }

  async function load() {
    try { render(await api('GET', path)); error.replaceChildren(); } catch (err) { error.replaceChildren(errorBox(err.message)); }
  }

  function follow() {
    source = new EventSource(`${path}/events`);
    const changed = () => {
      clearTimeout(pending);
      pending = setTimeout(load, 150);
    };
    source.addEventListener('run', changed);
    source.addEventListener('node', changed);
    source.addEventListener('end', (event) => {
      source.close();
      source = null;
      render(JSON.parse(event.data));
    });
  }

  load().then(follow);
  return () => { if (source) source.close(); clearTimeout(pending); };
}

// --- schedules -------------------------------------------------------------------------------

function schedulesView(main) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  main.append(h('h1', {}, 'Schedules'),
    h('p', { class: 'muted' }, 'Fire times are in each schedule\'s own zone, with yours beside them where it differs.'), body);
  return every(10_000, async () => {
    try {
      const page = await api('GET', '/api/v1/schedules', { params: { size: 200 } });
      const ticks = await Promise.all(page.schedules.map((sc) =>
        api('GET', `/api/v1/schedules/${enc(sc.id)}/ticks`, { params: { size: 10 } }).then((t) => t.ticks, () => [])));
      body.replaceChildren(page.schedules.length ? table(['Job', 'When', 'Enabled', 'Next fire times', 'Last fire', 'Ticks'],
        page.schedules.map((sc, i) => h('tr', { dataset: { id: sc.id } },
          cell('Job', h('a', { href: `/ui/jobs/${enc(sc.job)}`, 'data-nav': true }, sc.job)),
          cell('When', h('span', { class: 'mono' }, sc.cron ? sc.cron : `every ${sc.every}`), h('div', { class: 'muted small zone' }, sc.timezone)),
          cell('Enabled', sc.enabled ? 'yes' : 'no'),
          cell('Next fire times', h('ol', { class: 'fires' }, sc.nextFireTimes.map((t) => h('li', {}, zonedTime(t, sc.timezone))))),
          cell('Last fire', sc.lastFire ? [zonedTime(sc.lastFire.fireTime, sc.timezone), ' ', badge(sc.lastFire.outcome),
            sc.lastFire.runId ? [' ', h('a', { href: `/ui/runs/${enc(sc.lastFire.runId)}`, 'data-nav': true }, 'run')] : ''] : '–'),
          cell('Ticks', tickAxis({ past: ticks[i], next: sc.nextFireTimes, zone: sc.timezone,
            label: `Past and next ticks of the schedule of ${sc.job}` })))))
        : h('p', { class: 'muted' }, 'No schedules.'),
      h('p', { class: 'muted' }, `${page.schedules.length} of ${page.total}`));
    } catch (err) { body.replaceChildren(errorBox(err.message)); throw err; }
  });
}

export const workflowRoutes = [
  [/^\/ui\/jobs$/, jobsView, 'jobs'],
  [/^\/ui\/jobs\/([^/]+)$/, jobView, 'jobs'],
  [/^\/ui\/runs$/, runsView, 'runs'],
  [/^\/ui\/runs\/([^/]+)$/, runView, 'runs'],
  [/^\/ui\/schedules$/, schedulesView, 'schedules'],
];
export const workflowNav = [['jobs', 'Jobs'], ['runs', 'Runs'], ['schedules', 'Schedules']];
