// The Docket dashboard: a hash-routed page over the HTTP API, with no dependencies and no build
// step. Every write goes through the same API routes and auth as any client. Data is put on the
// page with textContent only (never innerHTML), so job args, errors and names cannot inject markup.

const POLL_MS = 2000;
const view = document.getElementById('view');
const state = { scope: 'write', refresh: null, busy: false, timer: null };

// --- helpers ---------------------------------------------------------------------------------

/** An element: h('td', {class: 'num'}, 'text', child, ...). Strings become text nodes. */
function h(tag, attrs = {}, ...children) {
  const svg = ['svg', 'rect', 'line', 'title', 'g'].includes(tag);
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Calls the API; the custom header is what lets the session cookie count (CSRF defence). */
async function api(method, path, body) {
  const headers = { 'X-Docket-Dashboard': '1' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await res.json(); } catch { data = null; }
  if (res.status === 401 && path !== '/session') showSignIn();
  return { status: res.status, ok: res.ok, data };
}

function errorText(r) {
  return (r.data && r.data.error && r.data.error.message) || `HTTP ${r.status}`;
}

function notice(text, isError = false) {
  const n = document.getElementById('notice');
  n.textContent = text;
  n.className = isError ? 'notice error' : 'notice';
  n.hidden = !text;
}

/** A button that runs `fn`, reports its outcome and refreshes the page. */
function action(label, fn, cls = '') {
  return h('button', {
    type: 'button', class: `action ${cls}`.trim(),
    onclick: async (e) => {
      e.target.disabled = true;
      try {
        const r = await fn();
        if (r && !r.ok) notice(`${label}: ${errorText(r)}`, true);
        else if (r) notice(`${label}: done`);
      } finally {
        e.target.disabled = false;
        refreshNow();
      }
    },
  }, label);
}

/** A button asking for confirmation inline before running `fn`. */
function confirmed(label, question, fn) {
  const box = h('span', { class: 'confirm action' });
  const ask = () => {
    box.replaceChildren(h('span', {}, question), action('Confirm', async () => { const r = await fn(); reset(); return r; }, 'danger'),
      h('button', { type: 'button', onclick: () => reset() }, 'Cancel'));
    state.holding = true;
  };
  const reset = () => { box.replaceChildren(h('button', { type: 'button', class: 'danger', onclick: ask }, label)); state.holding = false; };
  reset();
  return box;
}

const badge = (s) => h('span', { class: `badge state-${s}` }, s);
const num = (v) => h('td', { class: 'num' }, v === null || v === undefined ? '–' : v);
const ms = (v) => (v === null || v === undefined ? '–' : v < 1000 ? `${Math.round(v)} ms` : `${(v / 1000).toFixed(1)} s`);
const when = (t) => (t ? new Date(t).toLocaleString() : '–');
const table = (head, rows) => h('table', {}, h('thead', {}, h('tr', {}, head.map((c) => h('th', {}, c)))), h('tbody', {}, rows));
const enc = encodeURIComponent;

function bar(fraction) {
  const f = Math.max(0, Math.min(1, Number(fraction) || 0));
  return h('span', { class: 'bar', title: `${Math.round(f * 100)}%` }, h('span', { 'data-w': f }));
}

/** Widths are set through the CSSOM: the page's CSP refuses inline style attributes. */
function sizeBars(root) {
  for (const s of root.querySelectorAll('span[data-w]')) s.style.width = `${Number(s.dataset.w) * 100}%`;
}

/** Progress as a fraction when it reads as one: 0.4, 40, {percent: 40}, {done: 2, total: 5}. */
function progressFraction(p) {
  if (typeof p === 'number') return p <= 1 ? p : p / 100;
  if (p && typeof p === 'object') {
    if (typeof p.percent === 'number') return p.percent / 100;
    const done = p.done ?? p.current, total = p.total;
    if (typeof done === 'number' && typeof total === 'number' && total > 0) return done / total;
  }
  return null;
}

// --- pages -----------------------------------------------------------------------------------

/** Completed (green) and failed (red) per minute over the last hour, as a small inline SVG. */
function chart(points) {
  const W = 240, H = 40, now = Date.now();
  const start = Math.floor(now / 60000) * 60000 - 59 * 60000;
  const per = new Map(points.map((p) => [Math.round((Date.parse(p.minute) - start) / 60000), p]));
  const max = Math.max(1, ...points.map((p) => p.completed + p.failed));
  const bw = W / 60;
  const bars = [];
  for (let i = 0; i < 60; i++) {
    const p = per.get(i);
    if (!p) continue;
    const hc = (p.completed / max) * H, hf = (p.failed / max) * H;
    bars.push(h('rect', { class: 'completed', x: i * bw, y: H - hc - hf, width: bw - 0.5, height: hc }, h('title', {}, `${p.completed} completed`)));
    bars.push(h('rect', { class: 'failed', x: i * bw, y: H - hf, width: bw - 0.5, height: hf }, h('title', {}, `${p.failed} failed`)));
  }
  return h('svg', { class: 'chart', width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img',
    'aria-label': 'completed and failed per minute, last hour' }, h('line', { x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5 }), bars);
}

async function overview(root) {
  root.append(h('h1', {}, 'Queues'), h('div', { id: 'queues' }));
  return async () => {
    const [q, t] = await Promise.all([api('GET', '/queues'), api('GET', '/stats/throughput')]);
    if (!q.ok) throw new Error(errorText(q));
    const points = t.ok ? t.data.throughput : [];
    const rows = q.data.queues.map((x) => h('tr', { 'data-queue': x.queue },
      h('td', {}, x.queue, ' ', x.paused ? badge('paused') : ''),
      num(x.available), num(x.waiting), num(x.running),
      num(points.filter((p) => p.queue === x.queue).reduce((a, p) => a + p.completed, 0)),
      num(points.filter((p) => p.queue === x.queue).reduce((a, p) => a + p.failed, 0)),
      h('td', {}, chart(points.filter((p) => p.queue === x.queue))),
      h('td', {}, x.paused ? action('Resume', () => api('POST', `/queues/${enc(x.queue)}/resume`))
        : action('Pause', () => api('POST', `/queues/${enc(x.queue)}/pause`)))));
    root.querySelector('#queues').replaceChildren(rows.length ? table(
      ['Queue', 'Available', 'Scheduled/retrying', 'Running', 'Completed 1h', 'Failed 1h', 'Per minute, last hour', ''], rows)
      : h('p', { class: 'muted' }, 'No queues yet.'));
  };
}

/** A rate's period in seconds as the config writes it: 1s, 1m, 2h. */
function period(s) {
  if (s >= 3600 && s % 3600 === 0) return `${s / 3600}h`;
  if (s >= 60 && s % 60 === 0) return `${s / 60}m`;
  return `${s}s`;
}

async function kinds(root) {
  root.append(h('h1', {}, 'Kinds'), h('div', { id: 'kinds' }));
  return async () => {
    const r = await api('GET', '/stats');
    if (!r.ok) throw new Error(errorText(r));
    const rows = r.data.kinds.map((k) => {
      const input = h('input', { type: 'number', min: 0, size: 5, placeholder: 'none', value: k.max_running ?? '', 'aria-label': `limit for ${k.kind}` });
      return h('tr', { 'data-kind': k.kind },
        h('td', {}, k.kind),
        h('td', { class: 'num' }, `${k.running} / ${k.max_running ?? '∞'}`),
        k.rate_limit != null
          ? h('td', { class: k.at_limit ? 'warn' : '' }, `${Math.floor(k.rate_tokens ?? 0)} left of ${k.rate_limit}/${period(k.rate_period_s)}`)
          : h('td', { class: 'muted' }, '–'),
        num(k.completed_1h), num(k.failed_1h),
        h('td', {}, `${ms(k.run_p50_ms)} / ${ms(k.run_p95_ms)}`),
        h('td', {}, `${ms(k.wait_p50_ms)} / ${ms(k.wait_p95_ms)}`),
        h('td', {}, h('span', { class: 'action' }, input, ' ',
          action('Set limit', () => api('PUT', `/limits/${enc(k.kind)}`, { max_running: input.value === '' ? null : Number(input.value) }))),
        ' ', confirmed('Retry all failed', `Retry every failed ${k.kind} job?`, () => retryAllFailed(k.kind))));
    });
    root.querySelector('#kinds').replaceChildren(rows.length ? table(
      ['Kind', 'Running / quota', 'Rate: tokens / limit', 'Completed 1h', 'Failed 1h', 'Run p50 / p95', 'Wait p50 / p95', ''], rows)
      : h('p', { class: 'muted' }, 'No kinds yet.'));
  };
}

/** Retries a kind's failed jobs batch by batch (one bounded request each) until none is left. */
async function retryAllFailed(kind) {
  let after = null, retried = 0, skipped = 0;
  for (let i = 0; i < 10000; i++) {
    const r = await api('POST', `/kinds/${enc(kind)}/retry_failed${after ? `?after=${enc(after)}` : ''}`);
    if (!r.ok) return r;
    retried += r.data.retried; skipped += r.data.skipped;
    if (!r.data.next) break;
    after = r.data.next;
  }
  notice(`Retried ${retried} failed ${kind} job(s)${skipped ? `, skipped ${skipped}` : ''}.`);
  return null;
}

const STATES = ['', 'available', 'scheduled', 'running', 'retryable', 'completed', 'failed', 'cancelled'];

function jobActions(j) {
  const out = [];
  if (['available', 'scheduled', 'running', 'retryable'].includes(j.state)) out.push(action('Cancel', () => api('POST', `/jobs/${j.id}/cancel`)));
  if (['failed', 'cancelled', 'completed'].includes(j.state)) out.push(action('Retry', () => api('POST', `/jobs/${j.id}/retry`)));
  return out;
}

async function jobs(root, params) {
  const f = Object.fromEntries(params);
  const field = (name, el) => h('label', {}, name, el);
  const stateSel = h('select', { name: 'state' }, STATES.map((s) => h('option', { value: s, selected: s === (f.state || '') }, s || 'any')));
  const inputs = ['kind', 'queue', 'unique_key'].map((n) => h('input', { name: n, value: f[n] || '', size: 12 }));
  const form = h('form', { class: 'filters', onsubmit: (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const el of [stateSel, ...inputs]) if (el.value) q.set(el.name, el.value);
    location.hash = `#/jobs?${q}`;
  } }, field('State', stateSel), field('Kind', inputs[0]), field('Queue', inputs[1]), field('Key', inputs[2]), h('button', { type: 'submit' }, 'Filter'));
  root.append(h('h1', {}, 'Jobs'), form, h('div', { id: 'jobs' }));
  return async () => {
    const q = new URLSearchParams();
    for (const k of ['state', 'kind', 'queue', 'unique_key', 'after']) if (f[k]) q.set(k, f[k]);
    q.set('limit', '50');
    const r = await api('GET', `/jobs?${q}`);
    if (!r.ok) {
      root.querySelector('#jobs').replaceChildren(h('p', { class: 'error' }, errorText(r)));
      return;
    }
    const rows = r.data.jobs.map((j) => h('tr', { 'data-job': j.id },
      h('td', {}, h('a', { href: `#/jobs/${j.id}` }, j.id)), h('td', {}, j.kind), h('td', {}, j.queue), h('td', {}, badge(j.state)),
      num(j.attempt), h('td', {}, when(j.run_at)), h('td', {}, when(j.finished_at)), h('td', {}, jobActions(j))));
    const pager = h('div', { class: 'pager' });
    if (f.after) { const p = new URLSearchParams(params); p.delete('after'); pager.append(h('a', { href: `#/jobs?${p}` }, '« Newest')); }
    if (r.data.next_after) { const p = new URLSearchParams(params); p.set('after', r.data.next_after); pager.append(h('a', { href: `#/jobs?${p}`, id: 'older' }, 'Older »')); }
    root.querySelector('#jobs').replaceChildren(rows.length ? table(['Id', 'Kind', 'Queue', 'State', 'Attempt', 'Run at', 'Finished', ''], rows)
      : h('p', { class: 'muted' }, 'No jobs match.'), pager);
  };
}

/** A job's state changes as far as its row tells them: inserted, due, started, each failed attempt, finished. */
function timeline(j) {
  const ev = [[j.inserted_at, 'inserted']];
  if (j.run_at && j.run_at !== j.inserted_at) ev.push([j.run_at, 'due to run']);
  for (const e of j.errors || []) ev.push([e.at, `attempt ${e.attempt} failed`]);
  if (j.started_at) ev.push([j.started_at, `started (attempt ${j.attempt})`]);
  if (j.cancel_requested_at) ev.push([j.cancel_requested_at, 'cancel requested']);
  if (j.finished_at) ev.push([j.finished_at, j.state]);
  ev.sort((a, b) => Date.parse(a[0]) - Date.parse(b[0]));
  return h('ol', { class: 'timeline' }, ev.map(([t, what]) => h('li', {}, h('span', { class: 'muted' }, when(t)), ' ', what)));
}

async function job(root, params, id) {
  root.append(h('div', { id: 'job' }));
  return async () => {
    const r = await api('GET', `/jobs/${enc(id)}`);
    const box = root.querySelector('#job');
    if (!r.ok) { box.replaceChildren(h('p', { class: 'error' }, errorText(r))); return; }
    const j = r.data, p = progressFraction(j.progress);
    box.replaceChildren(
      h('h1', {}, `Job ${j.id} `, badge(j.state), ' ', jobActions(j)),
      table(['Kind', 'Queue', 'Attempt', 'Priority', 'Unique key', 'Worker'],
        [h('tr', {}, h('td', {}, j.kind), h('td', {}, j.queue), h('td', {}, `${j.attempt} of ${j.max_retries + 1}`), num(j.priority),
          h('td', {}, j.unique_key ?? '–'), h('td', {}, j.worker ?? '–'))]),
      h('h2', {}, 'Progress'), j.progress === null ? h('p', { class: 'muted' }, 'none reported')
        : h('p', {}, p !== null ? bar(p) : '', ' ', h('code', {}, JSON.stringify(j.progress))),
      h('h2', {}, 'Arguments'), h('pre', { id: 'args' }, JSON.stringify(j.args, null, 2)),
      h('h2', {}, 'Result'), j.result === null ? h('p', { class: 'muted' }, 'none') : h('pre', { id: 'result' }, JSON.stringify(j.result, null, 2)),
      h('h2', {}, `Errors (${(j.errors || []).length})`),
      (j.errors || []).length ? table(['Attempt', 'At', 'Error'], j.errors.map((e) => h('tr', {}, num(e.attempt), h('td', {}, when(e.at)),
        h('td', {}, h('pre', {}, typeof e.error === 'string' ? e.error : JSON.stringify(e.error)))))) : h('p', { class: 'muted' }, 'none'),
      h('h2', {}, 'Timeline'), timeline(j));
  };
}

async function workers(root) {
  root.append(h('h1', {}, 'Workers'), h('div', { id: 'workers' }));
  return async () => {
    const r = await api('GET', '/stats');
    if (!r.ok) throw new Error(errorText(r));
    const rows = r.data.workers.map((w) => h('tr', {},
      h('td', {}, w.name), h('td', {}, w.host), num(w.pid), h('td', {}, (w.queues || []).join(', ')),
      h('td', {}, bar(w.running / Math.max(1, w.concurrency)), ` ${w.running} / ${w.concurrency}`),
      h('td', {}, `${(w.heartbeat_age_s ?? 0).toFixed(1)} s`), h('td', {}, w.stopping ? badge('stopping') : '')));
    root.querySelector('#workers').replaceChildren(rows.length ? table(['Name', 'Host', 'Pid', 'Queues', 'In use', 'Heartbeat age', ''], rows)
      : h('p', { class: 'muted' }, 'No live workers.'));
  };
}

async function crawls(root) {
  root.append(h('h1', {}, 'Crawls'), h('div', { id: 'crawls' }));
  return async () => {
    const r = await api('GET', '/crawls?limit=100');
    if (!r.ok) throw new Error(errorText(r));
    const rows = r.data.crawls.map((c) => h('tr', {},
      num(c.id), h('td', {}, h('a', { href: `#/jobs/${c.job_id}` }, c.job_id)), h('td', {}, c.collection), h('td', {}, badge(c.status)),
      h('td', {}, bar(c.status === 'done' ? 1 : c.status === 'finalizing' ? 0.95 : 0), ` ${c.pages} pages, ${c.items} items`),
      h('td', { class: 'error' }, c.last_error ?? ''), h('td', {}, when(c.updated_at))));
    root.querySelector('#crawls').replaceChildren(rows.length ? table(['Id', 'Job', 'Collection', 'Status', 'Progress', 'Last error', 'Updated'], rows)
      : h('p', { class: 'muted' }, 'No crawls.'));
  };
}

async function schedules(root) {
  root.append(h('h1', {}, 'Schedules'), h('div', { id: 'schedules' }));
  return async () => {
    const r = await api('GET', '/schedules');
    const box = root.querySelector('#schedules');
    if (r.status === 404) { box.replaceChildren(h('p', { class: 'muted' }, 'This server has no schedules route.')); return; }
    if (!r.ok) throw new Error(errorText(r));
    const rows = r.data.schedules.map((s) => h('tr', { 'data-schedule': s.name },
      h('td', {}, s.name), h('td', {}, h('code', {}, s.cron), ' ', s.tz), h('td', {}, s.kind),
      h('td', {}, s.enabled ? 'enabled' : badge('paused')), h('td', {}, when(s.next_run_at)), h('td', {}, when(s.last_run_at)),
      h('td', {}, s.last_job_id ? h('a', { href: `#/jobs/${s.last_job_id}` }, s.last_job_id) : '–', ' ', s.last_job_state ? badge(s.last_job_state) : ''),
      h('td', {}, action('Run now', async () => {
        const x = await api('POST', `/schedules/${enc(s.name)}/run`);
        if (x.status === 404 && x.data?.error?.code === 'route_not_found') {
          return { ok: false, status: 404, data: { error: { message: 'this server has no POST /schedules/{name}/run route' } } };
        }
        return x;
      }))));
    box.replaceChildren(rows.length ? table(['Name', 'Cron', 'Kind', 'State', 'Next run', 'Last run', 'Last job', ''], rows)
      : h('p', { class: 'muted' }, 'No schedules.'));
  };
}

// --- routing, polling, sign-in ---------------------------------------------------------------

const PAGES = { overview, kinds, jobs, workers, crawls, schedules };

async function route() {
  const [path, query = ''] = location.hash.replace(/^#/, '').split('?');
  const parts = path.split('/').filter(Boolean);
  const name = parts[0] || 'overview';
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.getAttribute('href') === `#/${name}`);
  const root = h('section', { 'data-page': parts[1] ? 'job' : name });
  view.replaceChildren(root);
  notice('');
  const params = new URLSearchParams(query);
  const page = name === 'jobs' && parts[1] ? (r, p) => job(r, p, parts[1]) : PAGES[name] || overview;
  state.refresh = await page(root, params);
  await refreshNow();
}

async function refreshNow() {
  if (!state.refresh || state.busy) return;
  state.busy = true;
  try {
    await state.refresh();
    sizeBars(view);
    document.getElementById('updated').textContent = `Last update ${new Date().toLocaleTimeString()}.`;
    document.body.dataset.loaded = String(Date.now());
  } catch (e) {
    notice(String(e.message || e), true);
  } finally {
    state.busy = false;
  }
}

function showSignIn() {
  clearInterval(state.timer);
  document.getElementById('signin').hidden = false;
  view.hidden = true;
  document.getElementById('nav').hidden = true;
}

async function start() {
  const s = await api('GET', '/session');
  if (!s.ok) { notice(errorText(s), true); return; }
  document.getElementById('signout').hidden = !s.data.auth_required || !s.data.signed_in;
  if (s.data.auth_required && !s.data.signed_in) { showSignIn(); return; }
  state.scope = s.data.scope;
  document.body.classList.toggle('readonly', state.scope === 'read');
  document.getElementById('who').textContent = s.data.auth_required ? `signed in (${state.scope})` : 'local (no tokens)';
  document.getElementById('signin').hidden = true;
  view.hidden = false;
  document.getElementById('nav').hidden = false;
  await route();
  clearInterval(state.timer);
  // A poll re-renders the data: it waits while someone types into it or answers a confirmation.
  const typing = () => ['INPUT', 'SELECT'].includes(document.activeElement?.tagName) && view.contains(document.activeElement);
  state.timer = setInterval(() => { if (!document.hidden && !state.holding && !typing()) refreshNow(); }, POLL_MS);
}

document.getElementById('signin').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = document.getElementById('token');
  const r = await api('POST', '/session', { token: input.value });
  input.value = '';
  document.getElementById('signin-error').textContent = r.ok ? '' : errorText(r);
  if (r.ok) start();
});
document.getElementById('signout').addEventListener('click', async () => {
  await api('DELETE', '/session');
  location.reload();
});
window.addEventListener('hashchange', () => route());
start();
