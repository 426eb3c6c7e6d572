// The batchgate page: a small router over a few views, each a client of the JSON API.
import { logout, restore, session, whenUnauthorized } from './api.js';
import { clear, h, toast } from './dom.js';
import { loginView } from './login.js';
import { batchesView } from './batches.js';
import { batchView } from './batch.js';
import { submitView } from './submit.js';
import { overviewView } from './overview.js';
import { workflowNav, workflowRoutes } from './workflows.js';

const routes = [
  [/^\/ui\/login$/, loginView, null],
  [/^\/ui\/batches$/, batchesView, 'batches'],
  [/^\/ui\/batches\/([^/]+)$/, batchView, 'batches'],
  [/^\/ui\/submit$/, submitView, 'submit'],
  [/^\/ui\/overview$/, overviewView, 'overview'],
  ...workflowRoutes,
];

const main = document.getElementById('main');
let cleanup = null;

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render();
}

function showChrome(loggedIn) {
  document.getElementById('nav').hidden = !loggedIn;
  document.getElementById('who').hidden = !loggedIn;
  document.getElementById('who-name').textContent = loggedIn ? `${session.user}${session.admin ? ' (admin)' : ''}` : '';
}

async function render() {
  if (cleanup) { cleanup(); cleanup = null; }
  let path = location.pathname.replace(/\/+$/, '') || '/ui';
  if (path === '/ui') { history.replaceState(null, '', '/ui/batches'); path = '/ui/batches'; }
  if (!session.user && path !== '/ui/login') {
    const next = location.pathname + location.search;
    history.replaceState(null, '', `/ui/login?next=${encodeURIComponent(next)}`);
    path = '/ui/login';
  }
  showChrome(Boolean(session.user));
  for (const a of document.querySelectorAll('#nav a')) a.removeAttribute('aria-current');
  for (const [pattern, view, section] of routes) {
    const match = pattern.exec(path);
    if (!match) continue;
    if (section) document.querySelector(`#nav a[data-section="${section}"]`)?.setAttribute('aria-current', 'page');
    clear(main);
    const params = match.slice(1).map(decodeURIComponent);
    cleanup = (await view(main, params, new URLSearchParams(location.search), { navigate })) || null;
    const heading = main.querySelector('h1');
    if (heading) document.title = `${heading.textContent} · batchgate`;
    return;
  }
  clear(main).append(h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '/ui/batches', 'data-nav': true }, 'Batches')));
}

document.addEventListener('click', (event) => {
  const a = event.target.closest('a[data-nav]');
  if (!a || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  event.preventDefault();
  navigate(a.getAttribute('href'));
  main.focus({ preventScroll: true });
});
window.addEventListener('popstate', render);
document.querySelector('.skip').addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});

whenUnauthorized((message) => {
  if (!session.user) return;
  session.user = null;
  toast(`Signed out: ${message}`, 'error');
  render();
});

document.getElementById('logout').addEventListener('click', async () => {
  try { await logout(); } catch (err) { /* the session may be gone already */ }
  toast('Logged out');
  navigate('/ui/login');
});

for (const [section, label] of workflowNav) {
  document.querySelector('#nav ul').append(
    h('li', {}, h('a', { href: `/ui/${section}`, 'data-nav': true, 'data-section': section }, label)));
}

(async () => {
  try {
    await restore();
  } catch (err) {
    toast(err.message, 'error');
  }
  render();
})();
