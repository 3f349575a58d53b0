// The AgentOS console (gateway/console.h): one page, hash-routed, plain JavaScript.
//
// Rules this file keeps:
//  * Data reaches the page only as text (textContent, text nodes, attribute values set one
//    by one), never parsed as markup; no URL is built from data but an encoded hash link.
//  * The credential (an API key or a dashboard token) lives in this tab's sessionStorage and
//    travels only in the Authorization header. The only secret in a URL is the short-lived,
//    read-only stream token the event stream requires (its Referer is never sent).
//  * The live stream remembers the next offset it wants; a reconnect (after a dropped
//    connection, an engine restart, or coming back to the page) mints a new stream token
//    and asks for exactly that offset (`?from=`), so no event is lost or shown twice.
'use strict';

const STORAGE_KEY = 'agentos.console';
const MAX_ROWS = 1000;             // stream rows kept on the page (the oldest go first)
const STREAM_TOKEN_TTL_S = 60;     // each connection mints its own
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 4000;
const PAGE_LIMIT = 50;
const TENANT_RE = /^[a-z0-9-]{1,64}$/;
const SESSION_STATES = ['CREATED', 'QUEUED', 'RUNNING', 'CHECKPOINT', 'GATE_CHECK', 'COMPLETE', 'FAILED',
  'PAUSED', 'ROLLBACK', 'ROLLED_BACK', 'CANCELLED'];
const CHECK_STATES = ['SCHEDULED', 'RUNNING', 'REMOVED'];
const ALERT_STATES = ['OPEN', 'RESOLVED'];
const DREAM_STAGES = ['SPORE', 'SEEDLING', 'SAPLING', 'BLOOM', 'FRUIT', 'COMPILED'];

// ---- DOM, as text only -------------------------------------------------------------

// el('td', {class: 'num', dataset: {offset: 3}}, 'text', childNode, ...)
function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'dataset') for (const [dk, dv] of Object.entries(v)) e.dataset[dk] = String(dv);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function hashLink(text, ...parts) {
  return el('a', {href: '#/' + parts.map(encodeURIComponent).join('/')}, text);
}

function show(v) {
  if (v === undefined || v === null || v === '') return '';
  if (Array.isArray(v) && v.every((x) => typeof x !== 'object')) return v.join(', ');
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function stateTag(s) {
  return el('span', {class: 'state state-' + String(s).replace(/[^A-Za-z_]/g, '')}, show(s));
}

function notice(text, isError) {
  return el('div', {class: isError ? 'notice error' : 'notice', role: isError ? 'alert' : 'status'}, text);
}

function selectOf(id, label, values, current, onChange) {
  const s = el('select', {id, onchange: () => onChange(s.value)},
    el('option', {value: ''}, 'all'),
    values.map((v) => el('option', {value: v, selected: v === current}, v)));
  return el('label', {}, label, s);
}

// A table from column specs: {title, get(row) -> text or Node, class?}.
function table(columns, rows, rowProps) {
  return el('table', {},
    el('thead', {}, el('tr', {}, columns.map((c) => el('th', {}, c.title)))),
    el('tbody', {}, rows.map((r) => tableRow(columns, r, rowProps))));
}

function tableRow(columns, r, rowProps) {
  return el('tr', rowProps ? rowProps(r) : {}, columns.map((c) => {
    const v = c.get(r);
    return el('td', {class: c.class}, v instanceof Node ? v : show(v));
  }));
}

// ---- The credential and the API ----------------------------------------------------

let credential = loadCredential();

function loadCredential() {
  try {
    const c = JSON.parse(sessionStorage.getItem(STORAGE_KEY));
    if (c && typeof c.tenant === 'string' && typeof c.token === 'string') return c;
  } catch (e) { /* nothing stored, or not ours */ }
  return null;
}

class ApiError extends Error {
  constructor(status, problem) {
    const p = problem || {};
    let m = (status ? status + ' ' : '') + (p.title || 'error') + (p.detail && p.detail !== p.title ? ': ' + p.detail : '');
    if (Array.isArray(p.errors) && p.errors.length)
      m += ' (' + p.errors.map((e) => (e.field ? e.field + ': ' : '') + e.reason).join('; ') + ')';
    super(m);
    this.status = status;
    this.problem = p;
  }
}

async function api(method, path, body) {
  const headers = {Authorization: 'Bearer ' + credential.token, Accept: 'application/json'};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer'});
  } catch (e) {
    throw new ApiError(0, {title: 'the engine did not answer', detail: String(e.message || e)});
  }
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
  if (!res.ok) throw new ApiError(res.status, json || {title: res.statusText});
  return json;
}

function tenantPath(rest) {
  return '/v1/tenants/' + encodeURIComponent(credential.tenant) + rest;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? '?' + s : '';
}

// ---- Pages -------------------------------------------------------------------------

const main = () => document.getElementById('main');
let leavePage = null;  // the current page's cleanup

function route() {
  if (leavePage) leavePage();
  leavePage = null;
  const raw = location.hash.replace(/^#\/?/, '');
  let parts;
  try { parts = raw.split('/').map(decodeURIComponent); } catch (e) { parts = ['']; }
  const [name, ...args] = parts;
  document.getElementById('nav').hidden = !credential;
  document.getElementById('who').hidden = !credential;
  if (!credential) return renderLogin();
  document.getElementById('who-tenant').textContent = 'tenant ' + credential.tenant;
  const page = {stream: renderStream, sessions: renderSessions, session: renderSession, heartbeat: renderHeartbeat,
    dreams: renderDreams, dream: renderDream, audit: renderAudit, trace: renderTrace}[name];
  if (!page) {
    location.replace('#/stream');
    return;
  }
  for (const a of document.querySelectorAll('#nav a'))
    a.classList.toggle('current', a.dataset.page === name || (name === 'session' && a.dataset.page === 'sessions') ||
      (name === 'dream' && a.dataset.page === 'dreams') || (name === 'trace' && a.dataset.page === 'audit'));
  leavePage = page(...args) || null;
}

function renderLogin() {
  const tenant = el('input', {id: 'login-tenant', name: 'tenant', required: true, autocomplete: 'off',
    spellcheck: 'false', pattern: '[a-z0-9-]{1,64}', placeholder: 'acme'});
  const token = el('input', {id: 'login-token', name: 'token', type: 'password', required: true, autocomplete: 'off',
    spellcheck: 'false', placeholder: 'aos_… or a dashboard token'});
  const message = el('div', {id: 'login-message'});
  const form = el('form', {class: 'login', id: 'login-form', novalidate: true},
    el('h1', {}, 'Sign in'),
    el('label', {}, 'Tenant', tenant),
    el('label', {}, 'API key or dashboard token (JWT)', token),
    el('p', {class: 'hint'}, 'Kept in this tab only (sessionStorage) and sent only in the Authorization header.'),
    el('div', {}, el('button', {type: 'submit', id: 'login-submit'}, 'Sign in')),
    message);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    message.replaceChildren();
    const t = tenant.value.trim();
    const k = token.value.trim();
    if (!TENANT_RE.test(t)) return message.append(notice('A tenant id is 1-64 characters of a-z, 0-9 and -.', true));
    if (!k) return message.append(notice('Paste an API key or a dashboard token.', true));
    credential = {tenant: t, token: k};
    try {
      // Minting a stream token proves the credential is valid for this tenant and may read.
      await api('POST', tenantPath('/stream-tokens'), {ttl_seconds: 10});
    } catch (e) {
      credential = null;
      return message.append(notice('Not signed in: ' + e.message, true));
    }
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(credential));
    token.value = '';
    if (location.hash === '#/stream') route(); else location.hash = '#/stream';
  });
  main().replaceChildren(form);
  tenant.focus();
}

function signOut() {
  sessionStorage.removeItem(STORAGE_KEY);
  credential = null;
  liveStream = null;
  if (leavePage) leavePage();
  leavePage = null;
  location.hash = '#/login';
  route();
}

// ---- The live stream ---------------------------------------------------------------

// The stream's state outlives its page: leaving the page closes the connection, coming
// back resumes from the next offset wanted.
let liveStream = null;

class LiveStream {
  constructor(prefix, start) {
    this.prefix = prefix;   // ?type= (a type prefix), '' for every event
    this.start = start;     // the first connection's ?from=: 'end' or '0'
    this.resume = null;     // the next offset wanted; null until the first connection says
    this.first = null;      // the first offset the view covers
    this.rows = [];         // {offset, type, id, subject, time, source}, in log order
    this.ws = null;
    this.generation = 0;    // bumped by stop() and each connect: stale callbacks do nothing
    this.attempt = 0;
    this.timer = 0;
    this.running = false;
    this.state = 'stopped';
    this.detail = '';
    this.view = null;       // {add(row), drop(n), status()} while the page shows it
  }

  run() {
    if (this.running) return;
    this.running = true;
    this.attempt = 0;
    this.connect();
  }

  stop() {
    this.running = false;
    this.generation++;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, 'page left');
    this.ws = null;
    this.setState('stopped', '');
  }

  setState(state, detail) {
    this.state = state;
    this.detail = detail || '';
    if (this.view) this.view.status();
  }

  async connect() {
    const gen = ++this.generation;
    this.setState(this.resume === null && this.attempt === 0 ? 'connecting' : 'reconnecting', this.detail);
    let token;
    try {
      token = (await api('POST', tenantPath('/stream-tokens'), {ttl_seconds: STREAM_TOKEN_TTL_S})).token;
    } catch (e) {
      if (gen !== this.generation) return;
      if (e.status === 401 || e.status === 403) {  // the credential itself is refused: no retry
        this.running = false;
        return this.setState('failed', e.message);
      }
      return this.retry(e.message);
    }
    if (gen !== this.generation) return;
    const from = this.resume === null ? this.start : String(this.resume);
    const q = query({access_token: token, from, type: this.prefix});
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(scheme + '//' + location.host + tenantPath('/events/ws') + q);
    this.ws = ws;
    ws.onmessage = (m) => { if (gen === this.generation) this.message(ws, m.data); };
    ws.onclose = (e) => {
      if (gen !== this.generation) return;
      this.ws = null;
      this.retry(e.reason ? 'closed: ' + e.reason + ' (' + e.code + ')' : 'connection closed (' + e.code + ')');
    };
  }

  message(ws, text) {
    let m;
    try { m = JSON.parse(text); } catch (e) { return ws.close(4000, 'not JSON'); }
    if (m.kind === 'events') {
      for (const e of m.events) {
        if (this.first === null) this.first = e.offset;
        const ce = e.event || {};
        this.add({offset: e.offset, type: e.type, id: ce.id, subject: ce.subject, time: ce.time, source: ce.source});
        this.resume = e.offset + 1;
      }
      // Every event of the message is on the page: acknowledge them (the server's window).
      if (m.events.length) ws.send(JSON.stringify({ack: m.events[m.events.length - 1].offset}));
    } else if (m.kind === 'caught-up') {
      if (this.first === null) this.first = m.next;
      this.resume = Math.max(this.resume === null ? 0 : this.resume, m.next);
      this.attempt = 0;
      this.setState('live', '');
    } else if (m.kind === 'dropped') {  // the server closes next; it names where to resume
      this.resume = Math.max(this.resume === null ? 0 : this.resume, m.next);
      this.detail = m.reason;
    } else if (m.kind === 'error') {
      this.detail = m.detail;
    }
  }

  add(row) {
    this.rows.push(row);
    let dropped = 0;
    while (this.rows.length > MAX_ROWS) {
      this.rows.shift();
      dropped++;
    }
    if (this.view) this.view.add(row, dropped);
  }

  retry(why) {
    if (!this.running) return;
    const delay = Math.round(Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt) * (0.75 + Math.random() / 2));
    this.attempt++;
    this.setState('reconnecting', why);
    this.timer = setTimeout(() => { if (this.running) this.connect(); }, delay);
  }
}

const STREAM_COLUMNS = [
  {title: 'Offset', class: 'num mono', get: (r) => r.offset},
  {title: 'Type', class: 'mono', get: (r) => r.type},
  {title: 'Id', class: 'mono', get: (r) => r.id},
  {title: 'Subject', get: (r) => r.subject},
  {title: 'Time', class: 'mono', get: (r) => r.time},
  {title: 'Source', class: 'mono', get: (r) => r.source},
];

function streamRow(r) {
  return tableRow(STREAM_COLUMNS, r, (row) => ({class: 'event', dataset: {offset: row.offset, id: show(row.id)}}));
}

function renderStream() {
  if (!liveStream) liveStream = new LiveStream('', 'end');
  const s = liveStream;
  const prefix = el('input', {id: 'type-prefix', value: s.prefix, placeholder: 'session.', spellcheck: 'false'});
  const start = el('select', {id: 'start-from'},
    el('option', {value: 'end', selected: s.start === 'end'}, 'new events'),
    el('option', {value: '0', selected: s.start === '0'}, 'the whole history'));
  const status = el('span', {id: 'stream-status', class: 'status', role: 'status'});
  const count = el('span', {id: 'stream-count', class: 'hint'});
  const body = el('tbody', {id: 'stream-rows'}, s.rows.map(streamRow));
  const apply = (ev) => {
    ev.preventDefault();
    s.stop();
    liveStream = new LiveStream(prefix.value.trim(), start.value);
    route();
  };
  const form = el('form', {class: 'toolbar', id: 'stream-form', onsubmit: apply},
    el('label', {}, 'Type starts with', prefix),
    el('label', {}, 'Show', start),
    el('button', {type: 'submit', id: 'stream-apply'}, 'Apply'),
    el('button', {type: 'button', class: 'secondary', onclick: () => { s.rows = []; body.replaceChildren(); s.view.status(); }},
      'Clear'),
    status, count);
  s.view = {
    add(row, dropped) {
      for (let i = 0; i < dropped && body.firstChild; i++) body.firstChild.remove();
      body.append(streamRow(row));
      this.status();
    },
    status() {
      const labels = {connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting', failed: 'stopped',
        stopped: 'stopped'};
      status.dataset.state = s.state;
      status.dataset.resume = s.resume === null ? '' : String(s.resume);
      status.dataset.first = s.first === null ? '' : String(s.first);
      status.textContent = labels[s.state] + (s.first !== null ? ' — since offset ' + s.first : '') +
        (s.detail ? ' (' + s.detail + ')' : '');
      count.textContent = s.rows.length + ' events' + (s.resume !== null ? ', next offset ' + s.resume : '');
    },
  };
  main().replaceChildren(el('h1', {}, 'Live stream'), form,
    el('table', {id: 'stream-table'},
      el('thead', {}, el('tr', {}, STREAM_COLUMNS.map((c) => el('th', {}, c.title)))), body));
  s.view.status();
  s.run();
  return () => {
    s.stop();
    s.view = null;
  };
}

// ---- Read-model pages --------------------------------------------------------------

// A paged list: loads `path` + query with ?cursor=, renders rows of `member` into a table,
// a "More" button while `next` is not null. Errors (503 without read models) as notices.
function pagedList(id, path, params, member, columns) {
  const box = el('div', {id});
  let cursor = null;
  const rows = [];
  const load = async () => {
    let page;
    try {
      page = await api('GET', tenantPath(path) + query({...params, limit: PAGE_LIMIT, cursor}));
    } catch (e) {
      return box.replaceChildren(notice(e.message, true));
    }
    rows.push(...(page[member] || []));
    cursor = page.next;
    const parts = [rows.length ? table(columns, rows) : notice('None.')];
    if (cursor) parts.push(el('p', {}, el('button', {type: 'button', class: 'secondary', onclick: load}, 'More')));
    box.replaceChildren(...parts);
  };
  box.append(notice('Loading…'));
  load();
  return box;
}

function fields(obj, names) {
  return el('dl', {class: 'fields'}, names.filter((n) => obj[n] !== undefined && obj[n] !== null)
    .flatMap((n) => [el('dt', {}, n), el('dd', {class: 'mono'},
      n === 'state' || n === 'stage' ? stateTag(obj[n]) : n === 'position' ? position(obj[n]) : show(obj[n]))]));
}

function position(p) {
  if (!p) return '';
  return p.partition + '/' + p.offset + (p.seq !== undefined ? '.' + p.seq : '');
}

function renderSessions(stateArg) {
  const state = SESSION_STATES.includes(stateArg) ? stateArg : '';
  const columns = [
    {title: 'Session', get: (r) => hashLink(r.sessionId, 'session', r.sessionId)},
    {title: 'State', get: (r) => stateTag(r.state)},
    {title: 'Name', get: (r) => r.name},
    {title: 'Model', get: (r) => r.model},
    {title: 'Step', get: (r) => r.step},
    {title: 'Progress', class: 'num', get: (r) => (typeof r.pct === 'number' ? Math.round(r.pct * 100) + '%' : '')},
    {title: 'Tokens in / out', class: 'num', get: (r) => show(r.tokensIn) + ' / ' + show(r.tokensOut)},
    {title: 'Cost (USD)', class: 'num', get: (r) => r.costUsd},
    {title: 'Updated', class: 'mono', get: (r) => r.updatedAt},
  ];
  main().replaceChildren(el('h1', {}, 'Sessions'),
    el('div', {class: 'toolbar'}, selectOf('session-state', 'State', SESSION_STATES, state,
      (v) => { location.hash = v ? '#/sessions/' + encodeURIComponent(v) : '#/sessions'; })),
    pagedList('sessions-list', '/sessions', {state}, 'sessions', columns));
}

function renderSession(id) {
  if (!id) return void (location.hash = '#/sessions');
  const box = el('div', {id: 'session-fields'}, notice('Loading…'));
  api('GET', tenantPath('/sessions/' + encodeURIComponent(id)))
    .then((s) => box.replaceChildren(fields(s, ['sessionId', 'state', 'name', 'model', 'step', 'pct', 'lastCheckpoint',
      'gate', 'error', 'chainId', 'chainStep', 'tokensIn', 'tokensOut', 'computeMs', 'costUsd', 'createdAt', 'updatedAt',
      'position'])))
    .catch((e) => box.replaceChildren(notice(e.message, true)));
  const transitions = [
    {title: 'From', get: (r) => stateTag(r.from)},
    {title: 'To', get: (r) => stateTag(r.to)},
    {title: 'At', class: 'mono', get: (r) => r.at},
    {title: 'Event type', class: 'mono', get: (r) => r.eventType},
    {title: 'Event id', class: 'mono', get: (r) => r.eventId},
    {title: 'Reason', get: (r) => r.reason},
    {title: 'Position', class: 'mono', get: (r) => position(r.position)},
  ];
  main().replaceChildren(el('h1', {}, 'Session ', el('span', {class: 'mono'}, id)),
    el('p', {}, hashLink('← all sessions', 'sessions')), box,
    el('h2', {}, 'Transitions'),
    pagedList('session-transitions', '/sessions/' + encodeURIComponent(id) + '/transitions', {}, 'transitions',
      transitions));
}

function renderHeartbeat() {
  const checks = [
    {title: 'Check', class: 'mono', get: (r) => r.checkId},
    {title: 'Name', get: (r) => r.name},
    {title: 'State', get: (r) => stateTag(r.state)},
    {title: 'Priority', class: 'num', get: (r) => r.priority},
    {title: 'Next due', class: 'mono', get: (r) => r.nextDueAt},
    {title: 'Runs', class: 'num', get: (r) => r.runs},
    {title: 'Last result', get: (r) => (r.lastResult ? stateTag(r.lastResult) : '')},
    {title: 'At', class: 'mono', get: (r) => r.lastResultAt},
    {title: 'Open alert', class: 'mono', get: (r) => r.openAlertId},
  ];
  const alerts = [
    {title: 'Alert', class: 'mono', get: (r) => r.alertId},
    {title: 'Check', class: 'mono', get: (r) => r.checkId},
    {title: 'State', get: (r) => stateTag(r.state)},
    {title: 'Priority', class: 'num', get: (r) => r.priority},
    {title: 'Message', get: (r) => r.message},
    {title: 'Count', class: 'num', get: (r) => r.count},
    {title: 'Opened', class: 'mono', get: (r) => r.openedAt},
    {title: 'Last', class: 'mono', get: (r) => r.lastAt},
    {title: 'Resolved', class: 'mono', get: (r) => show(r.resolvedAt) + (r.resolveReason ? ' (' + r.resolveReason + ')' : '')},
  ];
  const checksBox = el('div');
  const alertsBox = el('div');
  const loadChecks = (state) => checksBox.replaceChildren(
    pagedList('heartbeat-checks', '/heartbeat/checks', {state}, 'checks', checks));
  const loadAlerts = (state) => alertsBox.replaceChildren(
    pagedList('heartbeat-alerts', '/heartbeat/alerts', {state}, 'alerts', alerts));
  main().replaceChildren(el('h1', {}, 'Checks and alerts'),
    el('h2', {}, 'Checks'), el('div', {class: 'toolbar'}, selectOf('check-state', 'State', CHECK_STATES, '', loadChecks)),
    checksBox,
    el('h2', {}, 'Alerts'), el('div', {class: 'toolbar'}, selectOf('alert-state', 'State', ALERT_STATES, 'OPEN', loadAlerts)),
    alertsBox);
  loadChecks('');
  loadAlerts('OPEN');
}

function renderDreams() {
  const columns = [
    {title: 'Dream', get: (r) => hashLink(r.dreamId, 'dream', r.dreamId)},
    {title: 'Stage', get: (r) => stateTag(r.stage)},
    {title: 'Fitness', class: 'num', get: (r) => r.fitness},
    {title: 'Signals', class: 'num', get: (r) => r.signals},
    {title: 'Tags', get: (r) => r.tags},
    {title: 'Session', class: 'mono', get: (r) => (r.sessionId ? r.sessionId + ' ' + show(r.sessionState) : '')},
    {title: 'Updated', class: 'mono', get: (r) => r.updatedAt},
  ];
  const listBox = el('div');
  const tag = el('input', {id: 'dream-tag', placeholder: 'tag', spellcheck: 'false'});
  let stage = '';
  const load = () => listBox.replaceChildren(
    pagedList('dreams-list', '/dreams', {stage, tag: tag.value.trim()}, 'dreams', columns));
  main().replaceChildren(el('h1', {}, 'Dreams'),
    el('form', {class: 'toolbar', onsubmit: (ev) => { ev.preventDefault(); load(); }},
      selectOf('dream-stage', 'Stage', DREAM_STAGES, '', (v) => { stage = v; load(); }),
      el('label', {}, 'Tag', tag), el('button', {type: 'submit'}, 'Filter')),
    listBox);
  load();
}

function renderDream(id) {
  if (!id) return void (location.hash = '#/dreams');
  const box = el('div', {id: 'dream-fields'}, notice('Loading…'));
  api('GET', tenantPath('/dreams/' + encodeURIComponent(id)))
    .then((d) => box.replaceChildren(fields(d, ['dreamId', 'stage', 'fitness', 'fitnessPpm', 'seed', 'tags', 'parents',
      'signals', 'sources', 'sessionId', 'sessionState', 'plantedAt', 'updatedAt', 'position'])))
    .catch((e) => box.replaceChildren(notice(e.message, true)));
  const history = [
    {title: 'Type', class: 'mono', get: (r) => r.type},
    {title: 'Stage', get: (r) => show(r.previousStage) + (r.previousStage ? ' → ' : '') + show(r.stage)},
    {title: 'Fitness', class: 'num', get: (r) => r.fitness},
    {title: 'Sources', class: 'num', get: (r) => r.sources},
    {title: 'Session', class: 'mono', get: (r) => r.sessionId},
    {title: 'At', class: 'mono', get: (r) => r.at},
    {title: 'Position', class: 'mono', get: (r) => position(r.position)},
  ];
  const signals = [
    {title: 'Source', class: 'mono', get: (r) => r.source},
    {title: 'Score (ppm)', class: 'num', get: (r) => r.scorePpm},
    {title: 'Weight (ppm)', class: 'num', get: (r) => r.weightPpm},
    {title: 'Vote', class: 'num', get: (r) => r.vote},
    {title: 'Note', get: (r) => r.note},
    {title: 'At', class: 'mono', get: (r) => r.at},
  ];
  const base = '/dreams/' + encodeURIComponent(id);
  main().replaceChildren(el('h1', {}, 'Dream ', el('span', {class: 'mono'}, id)),
    el('p', {}, hashLink('← the garden', 'dreams')), box,
    el('h2', {}, 'History'), pagedList('dream-history', base + '/history', {}, 'history', history),
    el('h2', {}, 'Signals'), pagedList('dream-signals', base + '/signals', {}, 'signals', signals));
}

// ---- Start -------------------------------------------------------------------------

// ---- Audit (compliance and admin keys; every read is recorded by the engine) ---------

const auditColumns = [
  {title: 'Offset', class: 'num', get: (r) => r.offset},
  {title: 'Time', class: 'mono', get: (r) => r.time},
  {title: 'Type', class: 'mono', get: (r) => r.type},
  {title: 'Id', class: 'mono', get: (r) => hashLink(r.id, 'trace', r.id)},
  {title: 'Subject', get: (r) => r.subject},
  {title: 'Actor', class: 'mono', get: (r) => r.actor},
  {title: 'Correlation', class: 'mono', get: (r) => r.correlationId},
  {title: 'Caused by', class: 'mono', get: (r) => r.causationId},
];

function renderAudit() {
  const listBox = el('div');
  const type = el('input', {id: 'audit-type', placeholder: 'type prefix', spellcheck: 'false'});
  const subject = el('input', {id: 'audit-subject', placeholder: 'subject', spellcheck: 'false'});
  const actor = el('input', {id: 'audit-actor', placeholder: 'actor', spellcheck: 'false'});
  const load = () => listBox.replaceChildren(pagedList('audit-list', '/audit/events',
    {type: type.value.trim(), subject: subject.value.trim(), actor: actor.value.trim()}, 'events', auditColumns));
  main().replaceChildren(el('h1', {}, 'Audit trail'),
    el('p', {}, 'Every read of this trail is itself recorded in it (audit.accessed).'),
    el('form', {class: 'toolbar', onsubmit: (ev) => { ev.preventDefault(); load(); }},
      el('label', {}, 'Type', type), el('label', {}, 'Subject', subject), el('label', {}, 'Actor', actor),
      el('button', {type: 'submit', id: 'audit-apply'}, 'Filter')),
    listBox);
  load();
}

function renderTrace(id) {
  if (!id) return void (location.hash = '#/audit');
  main().replaceChildren(el('h1', {}, 'What ', el('span', {class: 'mono'}, id), ' caused'),
    el('p', {}, hashLink('← the audit trail', 'audit')),
    pagedList('audit-trace', '/audit/trace/' + encodeURIComponent(id), {}, 'events',
      [{title: 'Depth', class: 'num', get: (r) => r.depth}, ...auditColumns]));
}

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('sign-out').addEventListener('click', signOut);
  window.addEventListener('hashchange', route);
  route();
});
