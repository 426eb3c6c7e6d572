// The submit form. Checking is the gateway's job: its 400 message is shown as it is, next to the field
// it names.
import { api } from './api.js';
import { TYPES, errorBox, h } from './dom.js';

const FIELD_OF = { batchType: 's-type', resource: 's-resource', className: 's-class', name: 's-name', args: 's-args', conf: 's-conf', resourceFile: 's-file' };

function lines(text) {
  return text.split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.length > 0);
}

export function submitView(main, _params, _query, { navigate }) {
  const input = (id, label, attrs = {}, hint = '') => [
    h('label', { for: id }, label),
    h('input', { id, name: id, ...attrs, 'aria-describedby': hint ? `${id}-hint` : undefined }),
    hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null,
  ];
  const area = (id, label, hint) => [
    h('label', { for: id }, label),
    h('textarea', { id, name: id, rows: '4', spellcheck: 'false', 'aria-describedby': `${id}-hint` }),
    h('p', { class: 'hint', id: `${id}-hint` }, hint),
  ];
  const error = h('div', { id: 'submit-error', 'aria-live': 'assertive' });
  const button = h('button', { type: 'submit', class: 'primary' }, 'Submit');
  const form = h('form', { class: 'card', id: 'submit-form', novalidate: true },
    h('label', { for: 's-type' }, 'Batch type'),
    h('select', { id: 's-type', name: 's-type' }, TYPES.map((t) => h('option', { value: t, selected: t === 'SPARK' }, t))),
    ...input('s-resource', 'Resource', { autocomplete: 'off', spellcheck: 'false' }, 'The jar, .py file or program; or upload a file below.'),
    ...input('s-file', 'Upload resource file', { type: 'file' }),
    ...input('s-class', 'Class name', { autocomplete: 'off', spellcheck: 'false' }, 'Main class (Spark, Flink).'),
    ...input('s-name', 'Name', { autocomplete: 'off' }),
    ...area('s-args', 'Arguments', 'One argument per line, in order.'),
    ...area('s-conf', 'Conf', 'One key=value per line.'),
    error, h('div', { class: 'actions' }, button));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.replaceChildren();
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
    const target = name && FIELD_OF[name[1]] ? form.querySelector(`#${FIELD_OF[name[1]]}`) : null;
    error.replaceChildren(errorBox(message));
    if (target) {
      target.setAttribute('aria-invalid', 'true');
      target.setAttribute('aria-errormessage', 'submit-error');
      target.focus();
    }
  }

  main.append(h('p', { class: 'crumbs' }, h('a', { href: '/ui/batches', 'data-nav': true }, '← Batches')),
    h('h1', {}, 'Submit a batch'), form);
  form.querySelector('#s-type').focus();
}
