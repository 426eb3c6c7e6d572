// Draws a job's graph as SVG: nodes in layers by their longest path from a root, edges as curves.
// update() recolors the nodes in place, so a live run does not redraw the picture.
import { h, s } from './dom.js';

const W = 160;
const H = 46;
const GAP_X = 60;
const GAP_Y = 22;
const PAD = 16;

function layers(nodes) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const depth = new Map();
  const visit = (id, seen = new Set()) => {
    if (depth.has(id)) return depth.get(id);
    if (seen.has(id)) return 0;
    seen.add(id);
    const deps = (byId.get(id)?.in || []).filter((d) => byId.has(d));
    const d = deps.length ? 1 + Math.max(...deps.map((x) => visit(x, seen))) : 0;
    depth.set(id, d);
    return d;
  };
  nodes.forEach((n) => visit(n.id));
  const cols = [];
  for (const n of nodes) {
    const d = depth.get(n.id);
    (cols[d] ||= []).push(n);
  }
  // One pass of barycenter ordering keeps edges short.
  const row = new Map();
  cols.forEach((col, ci) => {
    if (ci > 0) {
      col.sort((a, b) => bary(a) - bary(b));
    }
    col.forEach((n, i) => row.set(n.id, i));
  });
  function bary(n) {
    const ins = (n.in || []).filter((d) => row.has(d));
    return ins.length ? ins.reduce((sum, d) => sum + row.get(d), 0) / ins.length : 0;
  }
  return { cols, row, depth };
}

export function drawDag(nodes, { label, href } = {}) {
  const { cols, row, depth } = layers(nodes);
  const tallest = Math.max(1, ...cols.map((c) => c.length));
  const width = PAD * 2 + cols.length * W + (cols.length - 1) * GAP_X;
  const height = PAD * 2 + tallest * H + (tallest - 1) * GAP_Y;
  const pos = (id) => {
    const col = cols[depth.get(id)];
    const offset = ((tallest - col.length) * (H + GAP_Y)) / 2;
    return { x: PAD + depth.get(id) * (W + GAP_X), y: PAD + offset + row.get(id) * (H + GAP_Y) };
  };
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': label || 'Job graph' },
    s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: '10', refY: '5', markerWidth: '7', markerHeight: '7', orient: 'auto-start-reverse' },
      s('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrow' }))));
  for (const n of nodes) {
    for (const dep of n.in || []) {
      if (!depth.has(dep)) continue;
      const a = pos(dep);
      const b = pos(n.id);
      const x1 = a.x + W;
      const y1 = a.y + H / 2;
      const x2 = b.x;
      const y2 = b.y + H / 2;
      const mx = (x1 + x2) / 2;
      svg.append(s('path', { class: 'edge', d: `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}`, 'marker-end': 'url(#arrow)' }));
    }
  }
  for (const n of nodes) {
    const p = pos(n.id);
    const name = n.id.length > 20 ? `${n.id.slice(0, 19)}…` : n.id;
    const group = s('g', { class: `node${n.state ? ` st-${n.state.toLowerCase()}` : ''}`, 'data-node': n.id, transform: `translate(${p.x} ${p.y})` },
      s('title', {}, n.id),
      s('rect', { width: W, height: H, rx: '6' }),
      s('text', { x: '10', y: '19' }, name),
      s('text', { x: '10', y: '36', class: 'state' }, n.state || n.subtitle || ''));
    const link = href ? href(n) : null;
    svg.append(link ? s('a', { href: link, 'data-nav': true, 'aria-label': `${n.id}${n.state ? `: ${n.state}` : ''}` }, group) : group);
  }
  return h('div', { class: 'dag' }, svg);
}

export function updateDag(container, nodes, href) {
  for (const n of nodes) {
    const group = container.querySelector(`g[data-node="${CSS.escape(n.id)}"]`);
    if (!group) continue;
    group.setAttribute('class', `node st-${String(n.state).toLowerCase()}`);
    group.querySelector('text.state').textContent = n.state;
    const target = href ? href(n) : null;
    if (!target) continue;
    let link = group.parentNode;
    if (link.tagName.toLowerCase() !== 'a') {
      const wrapper = s('a', { 'data-nav': true });
      link.insertBefore(wrapper, group);
      wrapper.append(group);
      link = wrapper;
    }
    link.setAttribute('href', target);
    link.setAttribute('aria-label', `${n.id}: ${n.state}`);
  }
}
