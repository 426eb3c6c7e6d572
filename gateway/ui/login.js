import { login } from './api.js';
import { errorBox, h } from './dom.js';

export function loginView(main, _params, query, { navigate }) {
  const error = h('div', { 'aria-live': 'assertive' });
  const user = h('input', { id: 'login-user', name: 'user', autocomplete: 'username', required: true });
  const password = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password' });
  const button = h('button', { type: 'submit', class: 'primary' }, 'Log in');
  const form = h('form', { class: 'card narrow', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Log in'),
    h('label', { for: 'login-user' }, 'User'), user,
    h('label', { for: 'login-password' }, 'Password'), password,
    error, h('div', { class: 'actions' }, button));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.replaceChildren();
    button.disabled = true;
    try {
      await login(user.value.trim(), password.value);
      password.value = '';
      const next = query.get('next');
      navigate(next && next.startsWith('/ui/') && !next.startsWith('/ui/login') ? next : '/ui/batches', { replace: true });
    } catch (err) {
      error.append(errorBox(err.message));
      password.select();
    } finally {
      button.disabled = false;
    }
  });
  main.append(form);
  user.focus();
}
