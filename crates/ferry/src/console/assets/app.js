// The Ferry console page. Everything shown comes from /api/... as JSON and is put on the page as
// text (textContent, text nodes), never as HTML, so a record holding markup shows as what it is.
'use strict';

const POLL_MS = 3000;
let csrf = null;
let timer = null;
let route = null;

// ---- helpers ---------------------------------------------------------------------------------

/** An element: h('td', {class: 'num'}, 'text', childElement, ...). Strings become text nodes. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function $(id) { return document.getElementById(id); }

function replace(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function duration(secs) {
  if (secs === null || secs === undefined) return '—';
  if (secs < 60) return `${secs.toFixed(1)} s`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min ${Math.round(secs % 60)} s`;
  return `${Math.floor(secs / 3600)} h ${Math.round((secs % 3600) / 60)} min`;
}

function badge(text, kind) { return h('span', { class: `badge ${kind || text}` }, text); }

const COUNT_NAMES = [['inserted', 'inserted'], ['updated', 'updated'], ['unchanged', 'unchanged'],
  ['kept', 'kept'], ['accepted', 'accepted'], ['written', 'written'], ['skipped', 'skipped'],
  ['dead', 'dead-lettered']];

function countsText(run) {
  const parts = COUNT_NAMES.filter(([k]) => run.counts[k] > 0).map(([k, label]) => `${run.counts[k]} ${label}`);
  return `${run.records} records` + (parts.length ? `: ${parts.join(', ')}` : '');
}

function toast(text) {
  const t = $('toast');
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
}

/** Ask before doing something; resolves true on OK. */
function confirmBox(title, text, ok) {
  return new Promise((resolve) => {
    $('modal-title').textContent = title;
    $('modal-text').textContent = text;
    $('modal-ok').textContent = ok;
    $('modal').hidden = false;
    const done = (answer) => {
      $('modal').hidden = true;
      $('modal-ok').removeEventListener('click', yes);
      $('modal-cancel').removeEventListener('click', no);
      resolve(answer);
    };
    const yes = () => done(true);
    const no = () => done(false);
    $('modal-ok').addEventListener('click', yes);
    $('modal-cancel').addEventListener('click', no);
    $('modal-ok').focus();
  });
}

class LoginNeeded extends Error {}

async function api(path, body) {
  const options = { credentials: 'same-origin', headers: {} };
  if (body !== undefined) {
    options.method = 'POST';
    options.headers['Content-Type'] = 'application/json';
    if (csrf) options.headers['X-Ferry-CSRF'] = csrf;
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (response.status === 401 && path !== '/api/login') throw new LoginNeeded();
  if (!response.ok) throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
  return data;
}

// ---- chrome: breadcrumbs, who, health ----------------------------------------------------------

function crumbs(...items) {
  const out = [];
  items.forEach((item, i) => {
    if (i > 0) out.push(h('span', { class: 'sep' }, '/'));
    out.push(item.href ? h('a', { href: item.href }, item.text) : h('span', {}, item.text));
  });
  replace($('crumbs'), out);
}

function showHealth(health) {
  const box = $('health');
  const lines = [];
  const names = { broker: 'RabbitMQ (the broker)', state: 'The state database' };
  for (const key of ['broker', 'state']) {
    const link = health && health[key];
    if (link && !link.ok) {
      lines.push(h('p', {}, h('strong', {}, `${names[key]} is unreachable since ${when(link.since)}`),
        link.error ? ` — ${link.error}` : '', '. Showing what was last known.'));
    }
  }
  replace(box, lines);
  box.hidden = lines.length === 0;
}

// ---- login ------------------------------------------------------------------------------------

function showLogin(message) {
  stopPolling();
  csrf = null;
  $('who').textContent = '';
  $('logout').hidden = true;
  $('health').hidden = true;
  crumbs({ text: 'Log in' });
  const error = h('p', { class: 'error-text', id: 'login-error' }, message || '');
  const token = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off', placeholder: 'Console token' });
  const user = h('input', { type: 'text', id: 'user', name: 'user', autocomplete: 'username', placeholder: 'User' });
  const password = h('input', { type: 'password', id: 'password', name: 'password', autocomplete: 'current-password', placeholder: 'Password' });
  const form = h('form', {
    onsubmit: async (event) => {
      event.preventDefault();
      const body = token.value ? { token: token.value } : { user: user.value, password: password.value };
      try {
        const session = await api('/api/login', body);
        csrf = session.csrf;
        signedIn(session.user);
        navigate();
      } catch (e) {
        error.textContent = e.message;
      }
    },
  },
  h('label', { for: 'token' }, 'Token'), token,
  h('div', { class: 'or' }, 'or'),
  h('label', { for: 'user' }, 'User and password'), user, password,
  h('button', { class: 'primary', type: 'submit', id: 'login-submit' }, 'Log in'), error);
  replace($('main'), h('div', { class: 'card login' }, h('h1', {}, 'Ferry console'),
    h('p', { class: 'sub' }, 'Log in with the token or the user and password of [console] in ferry.toml.'), form));
  token.focus();
}

function signedIn(user) {
  $('who').textContent = user === 'token' ? 'signed in with the token' : `signed in as ${user}`;
  $('logout').hidden = false;
}

// ---- pages ------------------------------------------------------------------------------------

function stopPolling() { if (timer) clearInterval(timer); timer = null; }

function poll(render) {
  stopPolling();
  const tick = async () => {
    try { await render(); } catch (e) {
      if (e instanceof LoginNeeded) showLogin('Your session ended: log in again.');
      else toast(`Could not refresh: ${e.message}`);
    }
  };
  tick();
  timer = setInterval(tick, POLL_MS);
}

function schemesPage() {
  crumbs({ text: 'Schemes' });
  const body = h('tbody', { id: 'schemes-body' });
  const updated = h('span', { class: 'muted', id: 'updated' });
  replace($('main'),
    h('h1', {}, 'Schemes'),
    h('p', { class: 'sub' }, 'Every scheme, its last run and what waits in its queues. ', updated),
    h('div', { class: 'card' }, h('table', { id: 'schemes' },
      h('thead', {}, h('tr', {},
        h('th', {}, 'Scheme'), h('th', {}, 'Source → target'), h('th', {}, 'Schedule / next run'),
        h('th', {}, 'Last run'), h('th', { class: 'num' }, 'Waiting'), h('th', { class: 'num' }, 'Retrying'),
        h('th', { class: 'num' }, 'Dead letters'), h('th', { class: 'num hide-narrow' }, 'Consumers'))),
      body)));
  poll(async () => {
    const data = await api('/api/schemes');
    showHealth(data.health);
    updated.textContent = `Updated ${when(data.now)}.`;
    replace(body, data.schemes.map(schemeRow));
  });
}

function queueCell(q, f) {
  if (!q || q.known === false) return h('span', { class: 'muted' }, '—');
  return h('span', {}, f(q), q.stale ? h('div', { class: 'stale' }, 'last known') : null);
}

function schemeRow(s) {
  const run = s.last_run;
  const link = `#/scheme/${encodeURIComponent(s.name)}`;
  return h('tr', { 'data-scheme': s.name },
    h('td', {}, h('a', { class: 'name', href: link }, s.name), s.description ? h('div', { class: 'counts' }, s.description) : null),
    h('td', {}, `${s.source.connection} → ${s.target.connection}`,
      h('div', { class: 'counts' }, `${s.source.kind || '?'} → ${s.target.kind || '?'}`)),
    h('td', {}, s.schedule ? h('code', {}, s.schedule) : h('span', { class: 'muted' }, 'no schedule'),
      h('div', { class: 'counts' }, s.next_run ? `next ${when(s.next_run)}` : '')),
    h('td', { class: 'last-run' }, run ? [badge(run.status), ' ', duration(run.duration_secs),
      h('div', { class: 'counts' }, countsText(run)),
      s.runs_stale ? h('div', { class: 'stale' }, 'last known') : null]
      : h('span', { class: 'muted' }, 'never run')),
    h('td', { class: 'num' }, queueCell(s.queues, (q) => `${q.waiting.transform} / ${q.waiting.load}`),
      h('div', { class: 'counts' }, 'transform / load')),
    h('td', { class: 'num' }, queueCell(s.queues, (q) => String(q.retrying))),
    h('td', { class: 'num dead-cell' }, queueCell(s.queues, (q) => q.dead.total > 0
      ? h('a', { class: 'dead', href: `${link}/dead-letters` }, String(q.dead.total))
      : '0')),
    h('td', { class: 'num hide-narrow' }, queueCell(s.queues, (q) => `${q.consumers.transform} / ${q.consumers.load}`)));
}

function schemePage(name, page) {
  const link = `#/scheme/${encodeURIComponent(name)}`;
  crumbs({ text: 'Schemes', href: '#/' }, { text: name });
  const root = h('div', {});
  replace($('main'), root);
  poll(async () => {
    const s = await api(`/api/schemes/${encodeURIComponent(name)}?page=${page}`);
    showHealth(s.health);
    const q = s.queues || {};
    const dead = q.dead ? q.dead.total : 0;
    const parts = [
      h('h1', {}, s.name),
      h('p', { class: 'sub' }, `${s.source.connection} (${s.source.kind}) → ${s.target.connection} (${s.target.kind}) · ${s.file}`,
        s.description ? ` · ${s.description}` : ''),
    ];
    if (s.stopped) {
      parts.push(h('div', { class: 'alert', id: 'stopped' }, h('strong', {}, `The last run ${s.stopped.status}: `),
        s.stopped.error || 'no reason was recorded'));
    }
    const facts = h('dl', { class: 'facts' },
      h('dt', {}, 'Schedule'), h('dd', {}, s.schedule ? `${s.schedule} (${s.timezone})` : 'none: runs only with --once'),
      h('dt', {}, 'Next run'), h('dd', {}, when(s.next_run)),
      h('dt', {}, 'Waiting'), h('dd', {}, q.waiting ? `transform ${q.waiting.transform}, load ${q.waiting.load}` : '—'),
      h('dt', {}, 'Retrying'), h('dd', {}, q.retrying ?? '—'),
      h('dt', {}, 'Dead letters'), h('dd', {}, h('a', { href: `${link}/dead-letters`, id: 'dead-link', class: dead ? 'dead' : '' },
        q.dead ? `${dead} (transform ${q.dead.transform}, load ${q.dead.load})` : 'open')));
    const cp = s.checkpoint || {};
    const cursor = h('dl', { class: 'facts' },
      h('dt', {}, 'Last sync'), h('dd', {}, when(cp.last_sync_time)),
      h('dt', {}, 'Unfinished run'), h('dd', {}, cp.resumes_run ? `${cp.resumes_run}, resumes after ${cp.cursor}` : 'none'),
      h('dt', {}, 'Data cursor'), h('dd', {}, cp.data_cursor ?? '—'));
    parts.push(h('div', { class: 'grid' },
      h('div', { class: 'card' }, h('h2', {}, 'Now'), facts),
      h('div', { class: 'card' }, h('h2', {}, 'Where extraction stands'), cursor)));
    const rows = (s.runs || []).map((r) => h('tr', {},
      h('td', {}, h('code', {}, r.run_id)),
      h('td', {}, badge(r.status)),
      h('td', {}, when(r.started_at)),
      h('td', { class: 'num' }, duration(r.duration_secs)),
      h('td', { class: 'num' }, r.pages),
      h('td', {}, countsText(r), r.settled < r.records && r.status !== 'done' ? h('div', { class: 'counts' }, `${r.records - r.settled} not settled yet`) : null,
        r.error ? h('div', { class: 'letter-error' }, r.error) : null),
      h('td', {}, r.trace_url ? h('a', { href: r.trace_url, target: '_blank', rel: 'noopener noreferrer' }, 'trace') : h('span', { class: 'muted' }, '—'))));
    parts.push(h('div', { class: 'card' }, h('h2', {}, 'Runs'),
      rows.length ? h('table', { id: 'runs' }, h('thead', {}, h('tr', {}, h('th', {}, 'Run'), h('th', {}, 'Status'),
        h('th', {}, 'Started'), h('th', { class: 'num' }, 'Duration'), h('th', { class: 'num' }, 'Pages'),
        h('th', {}, 'Counts'), h('th', {}, 'Jaeger'))), h('tbody', {}, rows))
        : h('p', { class: 'muted' }, s.runs ? 'No run yet.' : 'Runs are unknown while the state database is unreachable.'),
      h('div', { class: 'pager' },
        page > 0 ? h('a', { href: `${link}?page=${page - 1}` }, '← newer') : null,
        h('span', { class: 'muted' }, `page ${page + 1}`),
        s.has_more ? h('a', { href: `${link}?page=${page + 1}` }, 'older →') : null)));
    parts.push(h('div', { class: 'card' }, h('h2', {}, 'Lint'),
      s.lint.length ? h('ul', { id: 'lint' }, s.lint.map((p) => h('li', {}, badge(p.severity, p.severity === 'error' ? 'failed' : 'loading'), ' ',
        p.path ? h('code', {}, p.path) : null, ' ', p.message)))
        : h('p', { class: 'muted' }, 'ferry lint finds no problem in this file.')));
    parts.push(h('div', { class: 'card' }, h('h2', {}, 'Metadata'),
      h('p', { class: 'muted' }, 'As the scheme file says; values taken from the environment are shown as ***.'),
      h('pre', { id: 'metadata' }, JSON.stringify(s.metadata, null, 2))));
    replace(root, parts);
  });
}

function deadLettersPage(name) {
  const link = `#/scheme/${encodeURIComponent(name)}`;
  crumbs({ text: 'Schemes', href: '#/' }, { text: name, href: link }, { text: 'Dead letters' });
  const classSel = h('select', { id: 'filter-class' }, h('option', { value: '' }, 'any class'),
    ['record', 'transient', 'config'].map((c) => h('option', { value: c }, c)));
  const text = h('input', { id: 'filter-text', type: 'search', placeholder: 'text in the error or payload' });
  const stageSel = h('select', { id: 'filter-stage' }, h('option', { value: '' }, 'both stages'),
    h('option', { value: 'transform' }, 'transform'), h('option', { value: 'load' }, 'load'));
  const summary = h('p', { class: 'sub', id: 'dl-summary' });
  const list = h('tbody', { id: 'letters' });
  const audit = h('div', { id: 'audit' });
  let last = null;
  const filter = () => ({
    stage: stageSel.value || null, error_class: classSel.value || null, text: text.value.trim() || null,
  });
  const matches = (l, f) => (!f.stage || l.stage === f.stage) && (!f.error_class || l.error_class === f.error_class)
    && (!f.text || [l.error, l.payload, ...l.record_ids].some((v) => (v || '').toLowerCase().includes(f.text.toLowerCase())));
  const replayButton = h('button', { class: 'primary', id: 'replay-filtered', onclick: () => replay(filter(), 'the filtered dead letters') }, 'Replay filtered');
  const replayAll = h('button', { class: 'secondary', id: 'replay-all', onclick: () => replay({}, 'all dead letters') }, 'Replay all');

  async function replay(request, what) {
    try {
      const dry = await api(`/api/schemes/${encodeURIComponent(name)}/replay`, { ...request, dry_run: true });
      if (dry.matched === 0) { toast('No dead letter matches: nothing to replay.'); return; }
      const ok = await confirmBox('Replay dead letters?',
        `${dry.matched} dead letter(s) will move back to their work queue (${what}). They are processed again at once.`,
        `Replay ${dry.matched}`);
      if (!ok) return;
      const done = await api(`/api/schemes/${encodeURIComponent(name)}/replay`, { ...request, dry_run: false });
      toast(`Moved ${done.moved} dead letter(s) back to their work queue.`);
      await render();
    } catch (e) {
      if (e instanceof LoginNeeded) showLogin('Your session ended: log in again.'); else toast(e.message);
    }
  }

  function draw() {
    if (!last) return;
    const f = filter();
    const shown = last.letters.filter((l) => matches(l, f));
    const totals = last.totals || {};
    const total = (totals.transform || 0) + (totals.load || 0);
    summary.textContent = `${total} dead letter(s): transform ${totals.transform ?? '?'}, load ${totals.load ?? '?'}; ${shown.length} shown.`;
    replayButton.textContent = `Replay filtered (${shown.length})`;
    replace(list, shown.length ? shown.map((l) => h('tr', { class: 'letter', 'data-record': l.record_ids.join(',') },
      h('td', {}, h('code', { class: 'record-id' }, l.record_ids.join(', ') || '—'), h('div', { class: 'counts' }, l.stage)),
      h('td', {}, badge(l.error_class), h('div', { class: 'letter-error' }, l.error),
        l.error_path ? h('div', { class: 'path' }, 'field ', h('code', {}, l.error_path)) : null),
      h('td', { class: 'num' }, l.attempts, l.replays ? h('div', { class: 'counts' }, `replayed ${l.replays}×`) : null),
      h('td', {}, when(l.first_failed_at), h('div', { class: 'counts' }, `last ${when(l.failed_at)}`)),
      h('td', {}, h('pre', { class: 'payload' }, l.payload)),
      h('td', {}, h('button', { class: 'small replay-one', onclick: () => replay({ stage: l.stage, record: l.record_ids[0] }, `record ${l.record_ids[0]}`) }, 'Replay'))))
      : h('tr', {}, h('td', { colspan: 6, class: 'muted' }, last.health.broker.ok ? 'No dead letter matches.' : 'Dead letters are unknown while RabbitMQ is unreachable.')));
    const replays = last.replays;
    replace(audit, h('h2', {}, 'Replays'), replays === null
      ? h('p', { class: 'muted' }, 'Unknown while the state database is unreachable.')
      : replays.length === 0 ? h('p', { class: 'muted' }, 'No replay yet.')
        : h('table', { class: 'audit', id: 'replays' }, h('thead', {}, h('tr', {}, h('th', {}, 'When'), h('th', {}, 'Who'),
          h('th', {}, 'Action'), h('th', {}, 'Stage'), h('th', {}, 'Filter'), h('th', { class: 'num' }, 'Matched'), h('th', { class: 'num' }, 'Moved'))),
        h('tbody', {}, replays.map((a) => h('tr', {}, h('td', {}, when(a.started_at)), h('td', {}, a.by),
          h('td', {}, a.dry_run ? `${a.action} (dry run)` : a.action), h('td', {}, a.stage), h('td', {}, h('code', {}, a.filter)), h('td', { class: 'num' }, a.matched),
          h('td', { class: 'num' }, a.moved, a.error ? h('div', { class: 'letter-error' }, a.error) : null))))));
  }

  async function render() {
    last = await api(`/api/schemes/${encodeURIComponent(name)}/dead-letters`);
    showHealth(last.health);
    draw();
  }
  for (const input of [classSel, text, stageSel]) input.addEventListener('input', draw);

  replace($('main'),
    h('h1', {}, `Dead letters of ${name}`), summary,
    h('div', { class: 'card' },
      h('div', { class: 'toolbar' },
        h('label', {}, 'Error class', classSel), h('label', {}, 'Text', text), h('label', {}, 'Stage', stageSel),
        replayButton, replayAll),
      h('table', { id: 'letters-table' }, h('thead', {}, h('tr', {}, h('th', {}, 'Record'), h('th', {}, 'Error'),
        h('th', { class: 'num' }, 'Attempts'), h('th', {}, 'First / last failure'), h('th', {}, 'Payload'), h('th', {}, ''))), list)),
    h('div', { class: 'card' }, audit));
  poll(render);
}

// ---- routing ----------------------------------------------------------------------------------

function navigate() {
  const hash = decodeURIComponent(location.hash || '#/');
  const [path, query] = hash.slice(1).split('?');
  const page = Math.max(0, parseInt(new URLSearchParams(query || '').get('page') || '0', 10) || 0);
  const parts = path.split('/').filter(Boolean);
  route = parts;
  if (parts[0] === 'scheme' && parts[1] && parts[2] === 'dead-letters') deadLettersPage(parts[1]);
  else if (parts[0] === 'scheme' && parts[1]) schemePage(parts[1], page);
  else schemesPage();
}

async function start() {
  $('logout').addEventListener('click', async () => {
    try { await api('/api/logout', {}); } catch (_) { /* the session is gone either way */ }
    showLogin('Logged out.');
  });
  window.addEventListener('hashchange', () => { if (csrf) navigate(); });
  try {
    const session = await api('/api/session');
    csrf = session.csrf;
    signedIn(session.user);
    navigate();
  } catch (e) {
    showLogin(e instanceof LoginNeeded ? '' : e.message);
  }
}

document.addEventListener('DOMContentLoaded', start);
