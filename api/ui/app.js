// ironfleet's web console: three views over the public API.
//   #/            the fleet at a glance
//   #/locks       the lock view, live
//   #/node/<id>   one node: fields, actions, lock and line, ports, history, console
// Everything it shows comes from the API as the API renders it (secrets are
// masked there); everything live comes from GET /v1/watch (Server-Sent
// Events): the lock view's changes and the fleet's events. Nothing polls.
'use strict';

const API_VERSION = 'latest';

const state = {
  session: null,          // GET /ui/session
  nodes: new Map(),       // uuid → node (GET /v1/nodes/detail, refreshed per event)
  locks: new Map(),       // uuid → {view, at: server ms, recv: local ms}
  events: [],             // the latest fleet events, newest first
  nodesLoaded: false,
  nodesError: '',
};

// h builds an element; text goes in as text, never as HTML.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// apiError turns Ironic's error body ({"error_message": "<JSON fault>"})
// into its faultstring.
async function apiError(res) {
  let text = await res.text();
  try {
    const body = JSON.parse(text);
    const inner = typeof body.error_message === 'string' ? JSON.parse(body.error_message) : body.error_message;
    if (inner && inner.faultstring) text = inner.faultstring;
  } catch (e) { /* not Ironic's shape: show it as it came */ }
  const err = new Error(`${res.status} ${res.statusText}: ${text}`);
  err.status = res.status;
  return err;
}

async function api(method, path, body) {
  const opts = { method, headers: { 'X-OpenStack-Ironic-API-Version': API_VERSION }, credentials: 'same-origin' };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  if (!res.ok) throw await apiError(res);
  if (res.status === 204 || res.status === 202) return null;
  const ct = res.headers.get('Content-Type') || '';
  return ct.includes('json') ? res.json() : null;
}

function serverTime(s) { return s ? Date.parse(s) : NaN; }

function fmtDuration(ms) {
  if (!(ms >= 0)) return '';
  const s = ms / 1000;
  if (s < 10) return s.toFixed(1) + 's';
  if (s < 120) return Math.round(s) + 's';
  if (s < 7200) return Math.round(s / 60) + 'm';
  return Math.round(s / 3600) + 'h';
}

// The server's "now", from the lock message's time and how long ago it came.
function lockNow(entry) { return entry.at + (Date.now() - entry.recv); }

// ---- the fleet's nodes -------------------------------------------------

async function loadNodes() {
  const all = new Map();
  let path = '/v1/nodes/detail?limit=1000';
  try {
    while (path) {
      const page = await api('GET', path);
      for (const n of page.nodes) all.set(n.uuid, n);
      path = page.next ? new URL(page.next, location.href).pathname + new URL(page.next, location.href).search : '';
    }
    state.nodes = all;
    state.nodesLoaded = true;
    state.nodesError = '';
  } catch (e) {
    state.nodesError = e.message;
  }
  render();
}

const pendingNodes = new Map(); // uuid → timer: one refresh per burst of events
function refreshNode(uuid) {
  if (pendingNodes.has(uuid)) return;
  pendingNodes.set(uuid, setTimeout(async () => {
    pendingNodes.delete(uuid);
    try {
      const n = await api('GET', '/v1/nodes/' + encodeURIComponent(uuid));
      state.nodes.set(n.uuid, n);
    } catch (e) {
      if (e.status === 404) state.nodes.delete(uuid);
    }
    render();
    if (current.view === 'node' && current.node && current.node.uuid === uuid) loadNodeDetails(uuid);
  }, 100));
}

function nodeLabel(uuid) {
  const n = state.nodes.get(uuid);
  return n && n.name ? n.name : uuid;
}

// ---- the live feed -------------------------------------------------------

let feed = null;
function connectFeed() {
  const conn = document.getElementById('conn');
  feed = new EventSource('/v1/watch');
  feed.addEventListener('open', () => { conn.dataset.state = 'open'; conn.textContent = 'live'; });
  feed.addEventListener('error', () => { conn.dataset.state = 'error'; conn.textContent = 'reconnecting…'; });
  feed.addEventListener('locks', (m) => {
    const d = JSON.parse(m.data);
    const recv = Date.now();
    state.locks = new Map(d.locks.map((v) => [v.node, { view: v, at: serverTime(d.at), recv }]));
    // Events missed while disconnected: read the nodes again once.
    loadNodes();
  });
  feed.addEventListener('lock', (m) => {
    const d = JSON.parse(m.data);
    const before = state.locks.get(d.lock.node);
    state.locks.set(d.lock.node, { view: d.lock, at: serverTime(d.at), recv: Date.now() });
    // A holder changed: the node's work moved on.
    if (!before || before.view.holder !== d.lock.holder) refreshNode(d.lock.node);
    render();
  });
  feed.addEventListener('unlock', (m) => {
    const d = JSON.parse(m.data);
    state.locks.delete(d.node);
    refreshNode(d.node);
    render();
  });
  feed.addEventListener('event', (m) => {
    const ev = JSON.parse(m.data);
    state.events.unshift(ev);
    state.events.length = Math.min(state.events.length, 50);
    // A lock event changes no node field: its 'lock' message (sent right
    // after it, when the view changed) refreshes the node if the holder did.
    if (ev.node && !ev.type.startsWith('lock.')) refreshNode(ev.node);
    render();
  });
}

// ---- views ----------------------------------------------------------------

const current = { view: '', id: '', node: null, ports: null, history: null, console: null, actionMsg: null };

function route() {
  const hash = location.hash || '#/';
  let view = 'fleet', id = '';
  if (hash.startsWith('#/locks')) view = 'locks';
  else if (hash.startsWith('#/node/')) { view = 'node'; id = decodeURIComponent(hash.slice('#/node/'.length)); }
  if (view !== current.view || id !== current.id) {
    closeConsole();
    Object.assign(current, { view, id, node: null, ports: null, history: null, console: null, actionMsg: null });
    if (view === 'node') loadNode(id);
  }
  for (const a of document.querySelectorAll('header nav a')) a.classList.toggle('current', a.dataset.nav === view);
  render();
}

let renderQueued = false;
let mouseDown = false; // a redraw between a button's mousedown and mouseup would lose the click
function render() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    if (mouseDown) { render.waiting = true; return; }
    const main = document.getElementById('view');
    if (current.view === 'node') {
      // A node's page is built once and filled in place: its buttons, and
      // the console pane with its text and keyboard focus, stay put.
      if (!current.node) { main.replaceChildren(nodeLoading()); return; }
      let page = document.getElementById('node-page');
      if (!page || page.dataset.uuid !== current.node.uuid) {
        page = nodeSkeleton(current.node.uuid);
        main.replaceChildren(page);
      }
      fillNodePage();
      return;
    }
    main.replaceChildren(current.view === 'locks' ? locksPage() : fleetPage());
  });
}
document.addEventListener('mousedown', () => { mouseDown = true; }, true);
document.addEventListener('mouseup', () => {
  mouseDown = false;
  // After the click that this mouseup makes.
  if (render.waiting) setTimeout(() => { render.waiting = false; render(); }, 0);
}, true);

function count(items, key) {
  const m = new Map();
  for (const it of items) { const k = key(it); m.set(k, (m.get(k) || 0) + 1); }
  return [...m.entries()].sort((a, b) => b[1] - a[1] || String(a[0]).localeCompare(String(b[0])));
}

function countCard(title, id, rows, attr) {
  return h('div', { class: 'card', id },
    h('h2', {}, title),
    h('table', {}, h('tbody', {}, rows.map(([k, n]) => h('tr', { [attr]: k },
      h('td', {}, k), h('td', { class: 'num' }, n))))));
}

function problems(nodes) {
  const st = state.session.states;
  const inProgress = new Set([...st.transient, ...st.wait]);
  const failed = new Set(st.failed);
  const out = [];
  const now = Date.now();
  for (const n of nodes) {
    const since = serverTime(n.provision_updated_at || n.updated_at || n.created_at);
    let why = '';
    if (failed.has(n.provision_state) || n.provision_state === 'error') why = 'failed';
    else if (inProgress.has(n.provision_state) && now - since > state.session.stuck_after_s * 1000) why = 'stuck';
    else if (n.last_error) why = 'error';
    else if (n.maintenance) why = 'maintenance';
    if (why) out.push({ n, why, since });
  }
  return out.sort((a, b) => a.since - b.since);
}

function nodeLink(uuid, text) {
  return h('a', { href: '#/node/' + encodeURIComponent(uuid) }, text || nodeLabel(uuid));
}

function fleetPage() {
  const nodes = [...state.nodes.values()];
  const page = h('section', { id: 'fleet-page' }, h('h1', {}, 'Fleet'));
  if (state.nodesError) page.append(h('p', { class: 'error' }, state.nodesError));
  if (!state.nodesLoaded) { page.append(h('p', { class: 'muted' }, 'Loading nodes…')); return page; }
  page.append(h('div', { class: 'cards' },
    h('div', { class: 'card' }, h('h2', {}, 'Nodes'), h('p', { id: 'node-total' }, String(nodes.length)),
      h('p', { class: 'muted' }, `${nodes.filter((n) => n.maintenance).length} in maintenance · ${state.locks.size} locked`)),
    countCard('Provision state', 'by-provision', count(nodes, (n) => n.provision_state), 'data-provision-state'),
    countCard('Power state', 'by-power', count(nodes, (n) => n.power_state || 'unknown'), 'data-power-state'),
    countCard('Maintenance', 'by-maintenance', count(nodes, (n) => (n.maintenance ? 'yes' : 'no')), 'data-maintenance')));

  const bad = problems(nodes);
  page.append(h('h2', {}, `Needs attention (${bad.length})`));
  if (bad.length === 0) page.append(h('p', { class: 'muted', id: 'attention' }, 'Nothing failed or stuck.'));
  else page.append(h('table', { id: 'attention' },
    h('thead', {}, h('tr', {}, ['node', 'why', 'provision state', 'since', 'last_error'].map((t) => h('th', {}, t)))),
    h('tbody', {}, bad.map(({ n, why, since }) => h('tr', { 'data-node': n.uuid },
      h('td', {}, nodeLink(n.uuid)), h('td', { class: why === 'maintenance' ? 'warn' : 'bad' }, why),
      h('td', {}, n.provision_state), h('td', {}, fmtDuration(Date.now() - since)),
      h('td', { class: 'error' }, n.last_error || n.maintenance_reason || ''))))));

  page.append(h('h2', {}, 'Nodes'));
  page.append(h('table', { id: 'nodes' },
    h('thead', {}, h('tr', {}, ['name', 'uuid', 'provision state', 'target', 'power', 'maintenance', 'lock'].map((t) => h('th', {}, t)))),
    h('tbody', {}, nodes.sort((a, b) => String(a.name || a.uuid).localeCompare(String(b.name || b.uuid))).map((n) => {
      const lk = state.locks.get(n.uuid);
      return h('tr', { 'data-node': n.uuid, 'data-provision-state': n.provision_state },
        h('td', {}, nodeLink(n.uuid, n.name || '—')), h('td', { class: 'muted' }, n.uuid),
        h('td', {}, n.provision_state), h('td', { class: 'muted' }, n.target_provision_state || ''),
        h('td', {}, n.power_state || ''), h('td', {}, n.maintenance ? 'yes' : ''),
        h('td', {}, lk && lk.view.held ? `${lk.view.holder} (${lk.view.purpose || ''})${lk.view.line_length ? ' +' + lk.view.line_length : ''}` : ''));
    }))));

  page.append(h('h2', {}, 'Events'));
  page.append(eventsTable(state.events));
  return page;
}

function eventsTable(events) {
  if (events.length === 0) return h('p', { class: 'muted' }, 'No events since this page opened.');
  return h('table', { id: 'events' },
    h('thead', {}, h('tr', {}, ['time', 'type', 'node', 'detail'].map((t) => h('th', {}, t)))),
    h('tbody', {}, events.map((ev) => h('tr', {},
      h('td', {}, new Date(ev.time).toLocaleTimeString()), h('td', {}, ev.type),
      h('td', {}, ev.node ? nodeLink(ev.node) : ''),
      h('td', {}, [ev.op, ev.from || ev.to ? `${ev.from || ''} → ${ev.to || ''}` : '', ev.holder, ev.purpose, ev.conductor, ev.code, ev.message].filter(Boolean).join(' · '))))));
}

function lineList(entry) {
  const v = entry.view;
  if (!v.line || v.line.length === 0) return h('span', { class: 'muted' }, 'nobody waits');
  const elapsed = Date.now() - entry.recv;
  return h('ol', { class: 'line' }, v.line.map((w) =>
    h('li', {}, `${w.holder} (${w.purpose || w.mode})${w.reserved ? ' reserved' : ''} · waited ${fmtDuration(w.waited_ms + elapsed)}`)));
}

function lockRow(entry) {
  const v = entry.view;
  const now = lockNow(entry);
  const longest = v.line_length ? v.longest_wait_ms + (Date.now() - entry.recv) : 0;
  return h('tr', { 'data-lock-node': v.node, 'data-line': v.line_length, 'data-holder': v.holder || '' },
    h('td', {}, nodeLink(v.node)),
    h('td', {}, v.held ? v.holder : h('span', { class: 'muted' }, 'free')),
    h('td', {}, v.purpose || ''), h('td', {}, v.mode || ''),
    h('td', {}, v.held ? fmtDuration(now - serverTime(v.since)) : ''),
    h('td', { class: 'num' }, v.line_length),
    h('td', { class: longest > 10000 ? 'bad' : '' }, longest ? fmtDuration(longest) : ''),
    h('td', {}, lineList(entry)));
}

function lockTable(entries, id) {
  return h('table', { id },
    h('thead', {}, h('tr', {}, ['node', 'holder', 'purpose', 'mode', 'held for', 'line', 'longest wait', 'waiting'].map((t) => h('th', {}, t)))),
    h('tbody', {}, entries.map(lockRow)));
}

function locksPage() {
  const entries = [...state.locks.values()].sort((a, b) =>
    b.view.line_length - a.view.line_length || b.view.longest_wait_ms - a.view.longest_wait_ms || a.view.node.localeCompare(b.view.node));
  const page = h('section', { id: 'locks-page' }, h('h1', {}, 'Node locks'),
    h('p', { class: 'muted' }, 'Every lock held or waited for, live from the event stream; the longest lines first.'));
  if (entries.length === 0) page.append(h('p', { class: 'muted', id: 'no-locks' }, 'No node is locked.'));
  else page.append(lockTable(entries, 'locks'));
  return page;
}

// ---- one node ----------------------------------------------------------------

async function loadNode(id) {
  try {
    const n = await api('GET', '/v1/nodes/' + encodeURIComponent(id));
    if (current.id !== id) return;
    current.node = n;
    state.nodes.set(n.uuid, n);
    loadNodeDetails(n.uuid);
  } catch (e) {
    if (current.id === id) current.actionMsg = { error: e.message };
  }
  render();
}

async function loadNodeDetails(uuid) {
  const node = '/v1/nodes/' + encodeURIComponent(uuid);
  const [n, ports, history, cons] = await Promise.allSettled([
    api('GET', node), api('GET', node + '/ports/detail'), api('GET', node + '/history'), api('GET', node + '/states/console'),
  ]);
  if (!current.node || current.node.uuid !== uuid) return;
  if (n.status === 'fulfilled') current.node = n.value;
  current.ports = ports.status === 'fulfilled' ? ports.value.ports : { error: ports.reason.message };
  current.history = history.status === 'fulfilled' ? history.value.history : { error: history.reason.message };
  const before = current.console;
  current.console = cons.status === 'fulfilled' ? cons.value : { error: cons.reason.message };
  if (!before || before.console_enabled !== current.console.console_enabled) updateConsole();
  render();
}

// The actions an operator takes, as the API takes them.
const ACTIONS = [
  { id: 'manage', label: 'Manage', call: (p) => api('PUT', p + '/states/provision', { target: 'manage' }) },
  { id: 'provide', label: 'Provide', call: (p) => api('PUT', p + '/states/provision', { target: 'provide' }) },
  { id: 'deploy', label: 'Deploy', call: (p) => api('PUT', p + '/states/provision', { target: 'active' }) },
  { id: 'undeploy', label: 'Undeploy', confirm: true, call: (p) => api('PUT', p + '/states/provision', { target: 'deleted' }) },
  { id: 'power-on', label: 'Power on', call: (p) => api('PUT', p + '/states/power', { target: 'power on' }) },
  { id: 'power-off', label: 'Power off', confirm: true, call: (p) => api('PUT', p + '/states/power', { target: 'power off' }) },
  { id: 'maintenance-on', label: 'Maintenance on', call: (p) => api('PUT', p + '/maintenance', { reason: 'set from the web console' }) },
  { id: 'maintenance-off', label: 'Maintenance off', call: (p) => api('DELETE', p + '/maintenance') },
  { id: 'console-on', label: 'Console enable', call: (p) => api('PUT', p + '/states/console', { enabled: true }) },
  { id: 'console-off', label: 'Console disable', call: (p) => api('PUT', p + '/states/console', { enabled: false }) },
];

const armed = new Set(); // actions clicked once that ask to be confirmed

async function act(a) {
  const n = current.node;
  if (a.confirm && !armed.has(a.id)) {
    armed.add(a.id);
    setTimeout(() => { armed.delete(a.id); render(); }, 5000);
    render();
    return;
  }
  armed.delete(a.id);
  current.actionMsg = { pending: `${a.label}…` };
  render();
  try {
    await a.call('/v1/nodes/' + encodeURIComponent(n.uuid));
    current.actionMsg = { ok: `${a.label}: accepted` };
  } catch (e) {
    current.actionMsg = { error: `${a.label}: ${e.message}` };
  }
  refreshNode(n.uuid);
  render();
}

// isLinks tells a list of links ({href, rel}), which the fields table skips.
function isLinks(v) {
  return Array.isArray(v) && v.length > 0 && v.every((x) => x && typeof x === 'object' && 'href' in x && 'rel' in x);
}

function kv(obj, id) {
  return h('table', { id }, h('tbody', {}, Object.keys(obj).sort().filter((k) => !isLinks(obj[k])).map((k) => {
    const v = obj[k];
    const shown = v !== null && typeof v === 'object' ? h('pre', {}, JSON.stringify(v, null, 2)) : (v === null ? h('span', { class: 'muted' }, 'null') : String(v));
    return h('tr', { 'data-field': k }, h('th', {}, k), h('td', {}, shown));
  })));
}

function nodeLoading() {
  const page = h('section', { id: 'node-loading' }, h('h1', {}, current.id));
  const msg = current.actionMsg;
  page.append(h('p', { class: msg && msg.error ? 'error' : 'muted' }, msg && msg.error ? msg.error : 'Loading…'));
  return page;
}

// nodeSkeleton is a node's page without its contents: fillNodePage fills
// the boxes; the action buttons and the console pane are made here, once.
function nodeSkeleton(uuid) {
  const canAct = state.session.can_act;
  return h('section', { id: 'node-page', 'data-uuid': uuid },
    h('h1', { id: 'node-title' }),
    h('div', { class: 'actions', id: 'actions' }, ACTIONS.map((a) =>
      h('button', {
        class: 'action', 'data-action': a.id, disabled: !canAct,
        title: canAct ? '' : `${state.session.user} has role ${state.session.role}, which may only read`,
        onclick: () => act(a),
      }, a.label))),
    h('div', { id: 'action-result' }),
    h('div', { id: 'node-last-error-box' }),
    h('div', { class: 'grid' },
      h('div', {}, h('h2', {}, 'Fields'), h('div', { id: 'node-fields-box' })),
      h('div', {}, h('div', { id: 'node-lock-box' }), h('h2', {}, 'Console'), consolePane(),
        h('h2', {}, 'Ports'), h('div', { id: 'node-ports-box' }), h('h2', {}, 'History'), h('div', { id: 'node-history-box' }))));
}

function fill(id, ...children) {
  const el = document.getElementById(id);
  if (el) el.replaceChildren(...children.flat().filter((c) => c !== '' && c !== null && c !== undefined));
  return el;
}

function fillNodePage() {
  const n = current.node;
  const canAct = state.session.can_act;
  fill('node-title', n.name || n.uuid, ' ',
    h('span', { id: 'node-provision-state', 'data-state': n.provision_state }, n.provision_state),
    n.target_provision_state ? h('span', { class: 'muted' }, ' → ' + n.target_provision_state) : '',
    ' · ', h('span', { id: 'node-power-state' }, n.power_state || 'power unknown'),
    n.maintenance ? h('span', { class: 'warn' }, ' · maintenance') : '');
  for (const b of document.querySelectorAll('#actions button.action')) {
    const a = ACTIONS.find((x) => x.id === b.dataset.action);
    const label = armed.has(a.id) ? `Confirm ${a.label.toLowerCase()}?` : a.label;
    if (b.textContent !== label) b.textContent = label;
  }
  const msg = current.actionMsg;
  const res = fill('action-result', msg ? msg.error || msg.ok || msg.pending : (canAct ? '' : 'Read only: your role may not act on nodes.'));
  if (res) res.className = msg && msg.error ? 'error' : msg && msg.ok ? 'ok' : 'muted';
  fill('node-last-error-box', n.last_error ? h('p', { class: 'error', id: 'node-last-error' }, 'last_error: ' + n.last_error) : '');
  const lk = state.locks.get(n.uuid);
  fill('node-lock-box', h('h2', {}, 'Lock'),
    lk ? lockTable([lk], 'node-lock-table') : h('p', { class: 'muted' }, 'Nobody holds or waits for this node\'s lock.'));
  fill('node-fields-box', kv(n, 'node-fields'));
  fill('node-ports-box', portsTable(current.ports));
  fill('node-history-box', historyTable(current.history));
}

function portsTable(ports) {
  if (!ports) return h('p', { class: 'muted' }, 'Loading…');
  if (ports.error) return h('p', { class: 'error' }, ports.error);
  if (ports.length === 0) return h('p', { class: 'muted' }, 'No ports.');
  return h('table', { id: 'ports' },
    h('thead', {}, h('tr', {}, ['address', 'pxe', 'physical network', 'local link', 'uuid'].map((t) => h('th', {}, t)))),
    h('tbody', {}, ports.map((p) => h('tr', {}, h('td', {}, p.address), h('td', {}, p.pxe_enabled ? 'yes' : 'no'),
      h('td', {}, p.physical_network || ''), h('td', {}, h('pre', {}, JSON.stringify(p.local_link_connection || {}))),
      h('td', { class: 'muted' }, p.uuid)))));
}

function historyTable(history) {
  if (!history) return h('p', { class: 'muted' }, 'Loading…');
  if (history.error) return h('p', { class: 'error' }, history.error);
  if (history.length === 0) return h('p', { class: 'muted' }, 'No history.');
  const rows = [...history].sort((a, b) => serverTime(b.created_at) - serverTime(a.created_at));
  return h('table', { id: 'history' },
    h('thead', {}, h('tr', {}, ['time', 'severity', 'type', 'event', 'by'].map((t) => h('th', {}, t)))),
    h('tbody', {}, rows.map((e) => h('tr', {}, h('td', {}, new Date(serverTime(e.created_at)).toLocaleString()),
      h('td', { class: e.severity === 'ERROR' ? 'bad' : '' }, e.severity), h('td', {}, e.event_type || ''),
      h('td', {}, e.event), h('td', {}, e.user || e.conductor || '')))));
}

// ---- the serial console --------------------------------------------------------
// A minimal terminal: the console's bytes as text (escape sequences
// dropped, carriage returns and backspaces honoured), keys sent as bytes.

class Term {
  constructor(el) { this.el = el; this.dec = new TextDecoder(); this.lines = ['']; }
  write(bytes) {
    let s = this.dec.decode(bytes, { stream: true });
    s = s.replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, '').replace(/\x1b[()][0-9A-Za-z]/g, '').replace(/\x1b./g, '');
    for (const ch of s) {
      const last = this.lines.length - 1;
      if (ch === '\n') this.lines.push('');
      else if (ch === '\r') this.cr = true;
      else if (ch === '\b' || ch === '\x7f') this.lines[last] = this.lines[last].slice(0, -1);
      else if (ch >= ' ' || ch === '\t') {
        if (this.cr) this.lines[last] = '';
        this.lines[last] += ch;
      }
      if (ch !== '\r') this.cr = false;
    }
    if (this.lines.length > 2000) this.lines.splice(0, this.lines.length - 2000);
    const atBottom = this.el.scrollTop + this.el.clientHeight >= this.el.scrollHeight - 4;
    this.el.textContent = this.lines.join('\n');
    if (atBottom) this.el.scrollTop = this.el.scrollHeight;
  }
}

const KEYS = { Enter: '\r', Backspace: '\x7f', Tab: '\t', Escape: '\x1b', ArrowUp: '\x1b[A', ArrowDown: '\x1b[B', ArrowRight: '\x1b[C', ArrowLeft: '\x1b[D', Delete: '\x1b[3~', Home: '\x1b[H', End: '\x1b[F' };

let consoleWS = null;
let term = null;

function consolePane() {
  const out = h('div', { class: 'term', id: 'console-out', tabindex: '0', 'aria-label': 'serial console', hidden: true });
  const pane = h('div', { id: 'console-pane' },
    h('p', { id: 'console-status', class: 'muted' }, 'Reading the console state…'), out);
  term = new Term(out);
  out.addEventListener('keydown', (e) => {
    if (!consoleWS || consoleWS.readyState !== WebSocket.OPEN) return;
    let s = KEYS[e.key];
    if (!s && e.ctrlKey && e.key.length === 1) s = String.fromCharCode(e.key.toUpperCase().charCodeAt(0) & 0x1f);
    else if (!s && e.key.length === 1 && !e.metaKey && !e.altKey) s = e.key;
    if (s) { e.preventDefault(); consoleWS.send(new TextEncoder().encode(s)); }
  });
  out.addEventListener('paste', (e) => {
    if (!consoleWS || consoleWS.readyState !== WebSocket.OPEN) return;
    e.preventDefault();
    consoleWS.send(new TextEncoder().encode(e.clipboardData.getData('text')));
  });
  queueMicrotask(updateConsole);
  return pane;
}

function consoleStatus(text, cls, st) {
  const el = document.getElementById('console-status');
  if (!el) return;
  el.textContent = text;
  el.className = cls || 'muted';
  el.dataset.state = st || '';
}

function closeConsole() {
  if (consoleWS) { consoleWS.onclose = null; consoleWS.close(); consoleWS = null; }
  term = null;
  const pane = document.getElementById('console-pane');
  if (pane) pane.remove();
}

// updateConsole follows the node's console state: shows it, and streams the
// console over GET /v1/nodes/{n}/console/ws while it is enabled.
async function updateConsole() {
  const c = current.console;
  const n = current.node;
  if (!c || !n || !document.getElementById('console-pane')) return;
  if (c.error) { consoleStatus(c.error, 'error', 'error'); return; }
  if (!c.console_enabled) {
    if (consoleWS) { consoleWS.onclose = null; consoleWS.close(); consoleWS = null; }
    consoleStatus('The console is disabled' + (state.session.can_act ? ': “Console enable” starts it.' : '.'), 'muted', 'disabled');
    return;
  }
  if (consoleWS) return;
  connectConsole(n, c);
}

// connectConsole opens the console's WebSocket. A browser reports a refused
// handshake only as a close, without its status: then a plain GET of the
// same path says why (404: this API serves no console stream; 400: not
// enabled; 403: admins only). The GET is not made first, since a console
// that is there would be dialled once for nothing.
function connectConsole(n, c) {
  const path = '/v1/nodes/' + encodeURIComponent(n.uuid) + '/console/ws';
  const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path);
  ws.binaryType = 'arraybuffer';
  consoleWS = ws;
  let opened = false;
  consoleStatus('Connecting to the console…', 'muted', 'connecting');
  ws.onopen = () => {
    opened = true;
    consoleStatus('Connected: type in the pane to send keys.', 'ok', 'open');
    const out = document.getElementById('console-out');
    if (out) out.hidden = false;
  };
  ws.onmessage = (m) => {
    if (!term) return;
    term.write(typeof m.data === 'string' ? new TextEncoder().encode(m.data) : new Uint8Array(m.data));
  };
  ws.onclose = async (e) => {
    if (consoleWS !== ws) return;
    consoleWS = null;
    if (opened) {
      consoleStatus(`The console stream closed (${e.code}${e.reason ? ': ' + e.reason : ''}).`, 'warn', 'closed');
    } else {
      try {
        const res = await fetch(path, { headers: { 'X-OpenStack-Ironic-API-Version': API_VERSION }, credentials: 'same-origin' });
        if (res.status === 404) {
          consoleStatus(`The console is enabled (${JSON.stringify(c.console_info)}), but this API serves no console stream: ${path} answered 404.`, 'warn', 'no-stream');
        } else if (res.status === 401 || res.status === 403) {
          consoleStatus('The console stream is for admins: ' + (await apiError(res)).message, 'warn', 'forbidden');
        } else if (!res.ok) {
          consoleStatus('The console refused: ' + (await apiError(res)).message, 'warn', 'refused');
        } else {
          consoleStatus(`The console stream did not open (${e.code}).`, 'warn', 'closed');
        }
      } catch (err) {
        consoleStatus('Cannot reach the console stream: ' + err.message, 'error', 'error');
      }
    }
    const pane = document.getElementById('console-pane');
    if (pane && !document.getElementById('console-reconnect')) {
      pane.insertBefore(h('button', { id: 'console-reconnect', onclick: (ev) => {
        ev.target.remove();
        if (!consoleWS && current.node && current.console && current.console.console_enabled) connectConsole(current.node, current.console);
      } }, 'Reconnect'), document.getElementById('console-out'));
    }
  };
}

// ---- start -----------------------------------------------------------------

async function start() {
  try {
    state.session = await api('GET', '/ui/session');
  } catch (e) {
    document.getElementById('view').replaceChildren(h('p', { class: 'error' }, 'Cannot read the session: ' + e.message));
    return;
  }
  document.getElementById('who').textContent = `${state.session.user} · ${state.session.role}`;
  window.addEventListener('hashchange', route);
  connectFeed();
  route();
  // Ages and waits grow while nothing happens: redraw them, locally.
  // A node's page is redrawn only while its own lock ages (a redraw drops
  // a text selection).
  setInterval(() => {
    if (current.view !== 'node' || (current.node && state.locks.has(current.node.uuid))) render();
  }, 1000);
}

start();
