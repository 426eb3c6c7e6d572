// The submit form. Checking is the gateway's job: its 400 message is shown as it is, under the field
// it names.
import { api, batchTypes } from './api.js';
import { h } from './dom.js';

const FIELD_OF = { batchType: 's-type', resource: 's-resource', className: 's-class', name: 's-name', args: 's-args', conf: 's-conf', resourceFile: 's-file' };

function lines(text) {
  return text.split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.length > 0);
}

function field(id, label, control, hint) {
  return h('div', { class: 'field', id: `${id}-field` },
    h('label', { for: id }, label), control,
    hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null);
}

export function submitView(main, _params, _query, { navigate }) {
  const described = (id, hint) => (hint ? `${id}-hint` : undefined);
  const input = (id, label, attrs = {}, hint = '') =>
    field(id, label, h('input', { id, name: id, ...attrs, 'aria-describedby': described(id, hint) }), hint);
  const area = (id, label, hint) =>
    field(id, label, h('textarea', { id, name: id, rows: '5', spellcheck: 'false', 'aria-describedby': `${id}-hint` }), hint);
  const error = h('p', { id: 'submit-error', class: 'error', role: 'alert', hidden: true });
  const button = h('button', { type: 'submit', class: 'primary' }, 'Submit');
  const top = h('div', { class: 'wide' });
  const types = h('select', { id: 's-type', name: 's-type' });
  batchTypes().then((found) => types.replaceChildren(
    ...found.map((t) => h('option', { value: t, selected: t === 'SPARK' }, t)))).catch(() => {});
  const form = h('form', { class: 'card form-grid', id: 'submit-form', novalidate: true },
    top,
    field('s-type', 'Batch type', types),
    input('s-name', 'Name', { autocomplete: 'off' }),
    input('s-resource', 'Resource', { autocomplete: 'off', spellcheck: 'false' }, 'The jar, .py file or program; or upload a file.'),
    input('s-class', 'Class name', { autocomplete: 'off', spellcheck: 'false' }, 'Main class (Spark, Flink).'),
    area('s-args', 'Arguments', 'One argument per line, in order.'),
    area('s-conf', 'Conf', 'One key=value per line.'),
    input('s-file', 'Upload resource file', { type: 'file' }),
    h('div', { class: 'actions wide' }, button));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
    const get = (id) => form.querySelector(`#${id}`).value;
    const conf = {};
    const bad = [];
    for (const line of lines(get('s-conf'))) {
      const at = line.indexOf('=');
      if (at <= 0) bad.push(line); else conf[line.slice(0, at).trim()] = line.slice(at + 1);
    }
    if (bad.length) {
      showError(`conf: expected key=value, not ${JSON.stringify(bad[0])}`);
      return;
    }
    const request = { batchType: get('s-type'), resource: get('s-resource').trim() || null, className: get('s-class').trim() || null,
      name: get('s-name').trim() || null, args: lines(get('s-args')), conf };
    const file = form.querySelector('#s-file').files[0];
    button.disabled = true;
    try {
      let batch;
      if (file) {
        const data = new FormData();
        data.append('batchRequest', new Blob([JSON.stringify(request)], { type: 'application/json' }));
        data.append('resourceFile', file, file.name);
        batch = await api('POST', '/api/v1/batches', { form: data });
      } else {
        batch = await api('POST', '/api/v1/batches', { json: request });
      }
      navigate(`/ui/batches/${encodeURIComponent(batch.id)}`);
    } catch (err) {
      showError(err.message);
    } finally {
      button.disabled = false;
    }
  });

  function showError(message) {
    const name = /^([A-Za-z]+)[.:]/.exec(message);
    const id = name && FIELD_OF[name[1]];
    const target = id ? form.querySelector(`#${id}`) : null;
    error.textContent = message;
    error.hidden = false;
    if (target) {
      form.querySelector(`#${id}-field`).append(error);
      target.setAttribute('aria-invalid', 'true');
      target.setAttribute('aria-errormessage', 'submit-error');
      target.focus();
    } else {
      top.append(error);
      error.scrollIntoView({ block: 'nearest' });
    }
  }

  main.append(h('p', { class: 'crumbs' }, h('a', { href: '/ui/batches', 'data-nav': true }, '← Batches')),
    h('h1', {}, 'Submit a batch'), form);
  form.querySelector('#s-type').focus();
}
