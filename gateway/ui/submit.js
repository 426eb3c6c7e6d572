// The submit form. Checking is the gateway's job: its 400 message is shown as it is, under the field
// it names.
import { api, batchTypes } from './api.js';
import { h } from './dom.js';

const FIELD_OF = { batchType: 's-type', resource: 's-resource', className: 's-class', name: 's-name', args: 's-arg-0', conf: 's-conf', resourceFile: 's-file' };
// The gateway names the API's fields; the form shows the words of its labels.
const LABEL_OF = { batchType: 'Batch type', resource: 'Resource', className: 'Class name', name: 'Name', args: 'Arguments',
  conf: 'Conf', resourceFile: 'Upload resource file' };

export function inFormWords(message) {
  return message
    .replace(/^([A-Za-z]+)([.:[])/, (all, name, rest) => (LABEL_OF[name] ? `${LABEL_OF[name]}${rest}` : all))
    .replace(/\b(?:upload )?an? resourceFile\b/g, `choose a file under “${LABEL_OF.resourceFile}”`)
    .replace(/\b(batchType|className|resourceFile)\b/g, (name) => `“${LABEL_OF[name]}”`);
}

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
  // Arguments: one box each, so that an argument may hold several lines (a `python3 -c` program).
  const argList = h('div', { class: 'arg-list', id: 's-args', role: 'group', 'aria-labelledby': 's-args-label', 'aria-describedby': 's-args-hint' });
  const addArg = (value = '') => {
    const n = argList.children.length;
    const box = h('textarea', { id: `s-arg-${n}`, class: 'arg', rows: value.includes('\n') ? '4' : '1', spellcheck: 'false',
      'aria-label': `Argument ${n + 1}` });
    box.value = value;
    const remove = h('button', { type: 'button', class: 'small', 'aria-label': `Remove argument ${n + 1}` }, '✕');
    remove.addEventListener('click', () => {
      row.remove();
      [...argList.querySelectorAll('textarea.arg')].forEach((t, i) => { t.id = `s-arg-${i}`; t.setAttribute('aria-label', `Argument ${i + 1}`); });
      if (!argList.children.length) addArg();
    });
    const row = h('div', { class: 'arg-row' }, box, remove);
    argList.append(row);
    return box;
  };
  addArg();
  const more = h('button', { type: 'button', class: 'small', id: 's-add-arg' }, '+ Add argument');
  more.addEventListener('click', () => addArg().focus());
  const argsField = h('div', { class: 'field wide', id: 's-args-field' },
    h('label', { id: 's-args-label', for: 's-arg-0' }, 'Arguments'), argList, more,
    h('p', { class: 'hint', id: 's-args-hint' }, 'One box per argument, in order; a box may hold several lines. Empty boxes are left out.'));
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
    argsField,
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
      name: get('s-name').trim() || null,
      args: [...form.querySelectorAll('textarea.arg')].map((t) => t.value).filter((v) => v.length > 0), conf };
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
    const name = /^([A-Za-z]+)[.:[]/.exec(message);
    const id = name && FIELD_OF[name[1]];
    const target = id ? form.querySelector(`#${id}`) : null;
    error.textContent = inFormWords(message);
    error.hidden = false;
    if (target) {
      form.querySelector(`#${id === 's-arg-0' ? 's-args' : id}-field`).append(error);
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
