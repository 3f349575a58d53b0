// The built-in console in a real browser (issue #14, item 3): Debian's Chromium, headless,
// driven by puppeteer-core (pinned in ops/browser), against a real `agentos serve`.
//
//   node tests/console/console_test.mjs <path of the agentos binary>
//
// The scenario: an engine on a loopback port with a fresh data directory; a tenant with a
// reader key (the console signs in with it) and a producer key (this script posts with it).
// The page is opened at /console (a redirect to /console/), signs in, follows the live
// stream; an event posted over HTTP must appear on it. Then the engine is SIGKILLed and
// started again on the same port and data directory. While it is down and while it comes
// back, the page's stream-token requests are held (request interception), so three events
// are posted while the page is certainly disconnected; then the page may reconnect, and
// two more events are posted live. At the end the page must show exactly the tenant's log
// from the offset it started at: every record once, in log order, the posted events among
// them with the offsets of their receipts; the type filter over the whole history shows
// exactly the matching events. With PostgreSQL (CTest's fixture, AGENTOS_TEST_PG_DIR) the
// engine also runs the read models, and the read pages are checked against them: sessions by
// state and a session's transitions, a check registered over HTTP, a dream (whose seed is
// markup, shown as text); then the stream page, left meanwhile, resumes with what was
// appended while it was away. Without it those pages are skipped (and said so). No fixed
// sleeps: every wait is a condition with a deadline. Any uncaught page error or
// Content-Security-Policy violation fails the test.
//
// Prints `N passed, 0 failed` and exits 0, or names the failure and exits 1 (the engine's
// log is printed then). CTest runs it as `console_browser` (label `interfaces`).
import {execFileSync, spawn} from 'node:child_process';
import {createRequire} from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = process.argv[2];
const chromium = process.env.AGENTOS_CHROMIUM || '/usr/bin/chromium';
const ADMIN = 'console-test-operator-token';
const TENANT = 'console-test';
const DEADLINE_MS = 15000;  // for each wait

let puppeteer;
try {
  puppeteer = createRequire(path.join(root, 'ops/browser/package.json'))('puppeteer-core');
} catch (e) {
  console.error('console_test: puppeteer-core is not installed; run: bash ops/install-deps.sh (npm ci --prefix ops/browser)');
  process.exit(1);
}
if (!bin || !fs.existsSync(bin)) {
  console.error('usage: node tests/console/console_test.mjs <agentos binary>');
  process.exit(2);
}
if (!fs.existsSync(chromium)) {
  console.error(`console_test: no browser at ${chromium} (Debian's chromium package; ops/install-deps.sh installs it)`);
  process.exit(1);
}

const started = Date.now();
const elapsed = () => ((Date.now() - started) / 1000).toFixed(1) + 's';
const step = (what) => console.log(`[${elapsed()}] ${what}`);

class Failure extends Error {}
function check(ok, what) {
  if (!ok) throw new Failure(what);
}

// Polls `probe` (sync or async) until it returns a truthy value, or fails naming `what`.
// A probe that throws is retried (the engine may not answer yet), unless it failed a check.
async function waitFor(what, probe, ms = DEADLINE_MS) {
  const until = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (e) {
      if (e instanceof Failure) throw e;
      last = e;
    }
    if (Date.now() > until) throw new Failure(`timed out after ${ms} ms waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// `agentos serve` on 127.0.0.1:<port> (0: any), its output in <dir>/engine.log.
class Engine {
  constructor(dir, extraArgs) {
    this.extraArgs = extraArgs;
    this.dir = dir;
    this.data = path.join(dir, 'data');
    this.logFile = path.join(dir, 'engine.log');
    this.portFile = path.join(dir, 'port');
    this.proc = null;
    this.port = 0;
  }

  async start(port) {
    fs.rmSync(this.portFile, {force: true});
    const out = fs.openSync(this.logFile, 'a');
    this.proc = spawn(bin, ['serve', '--data-dir', this.data, '--listen', `127.0.0.1:${port}`,
      '--port-file', this.portFile, '--admin-token', ADMIN, ...this.extraArgs], {stdio: ['ignore', out, out]});
    fs.closeSync(out);
    this.exited = new Promise((resolve) => this.proc.once('exit', resolve));
    const proc = this.proc;
    let gone = false;
    this.exited.then(() => { gone = true; });
    this.port = await waitFor('the engine to listen (its port file)', () => {
      check(!gone || proc !== this.proc, 'the engine exited while starting');
      const p = fs.existsSync(this.portFile) ? parseInt(fs.readFileSync(this.portFile, 'utf8'), 10) : 0;
      return p > 0 ? p : 0;
    });
    check(port === 0 || this.port === port, `the engine listens on ${this.port}, not ${port}`);
    await waitFor('/healthz', async () => (await fetch(this.url('/healthz'))).ok);
  }

  url(p) {
    return `http://127.0.0.1:${this.port}${p}`;
  }

  async kill() {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGKILL');
    await this.exited;
  }

  async call(method, p, token, body, contentType = 'application/json', extraHeaders = {}) {
    const res = await fetch(this.url(p), {method,
      headers: {Authorization: `Bearer ${token}`, 'Content-Type': contentType, ...extraHeaders},
      body: body === undefined ? undefined : JSON.stringify(body)});
    const text = await res.text();
    return {status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null};
  }
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentos-console-'));
  // PostgreSQL: a database of this run on the test cluster (tests/CMakeLists.txt).
  const pgDir = process.env.AGENTOS_TEST_PG_DIR;
  const pgUrl = pgDir ? execFileSync('bash', [path.join(root, 'ops/pg-cluster.sh'), 'createdb', pgDir,
    `console_${process.pid}`], {encoding: 'utf8'}).trim() : '';
  const engine = new Engine(dir, pgUrl ? ['--pg-url', pgUrl] : []);
  let browser;
  let passed = 0;
  const pass = (what) => {
    passed++;
    step(`ok: ${what}`);
  };
  try {
    await engine.start(0);
    step(`engine on port ${engine.port}`);

    // ---- The static files, over plain HTTP.
    const index = await fetch(engine.url('/console/'));
    const csp = index.headers.get('content-security-policy') || '';
    check(index.status === 200 && index.headers.get('content-type') === 'text/html; charset=utf-8',
      `/console/ answers ${index.status} ${index.headers.get('content-type')}`);
    check(csp.includes("default-src 'self'") && csp.includes("connect-src 'self'"), `CSP: ${csp}`);
    check(index.headers.get('x-content-type-options') === 'nosniff', 'nosniff');
    const etag = index.headers.get('etag');
    const again = await fetch(engine.url('/console/'), {headers: {'If-None-Match': etag}});
    check(again.status === 304, `a revalidation with the ETag answers ${again.status}`);
    const missing = await fetch(engine.url('/console/nothing.js'));
    check(missing.status === 404 && missing.headers.get('content-type') === 'application/problem+json',
      `an unknown console file answers ${missing.status} ${missing.headers.get('content-type')}`);
    pass('the console is served with its CSP, ETag revalidation and a 404 problem for unknown files');

    // ---- A tenant, a reader key for the page and a producer key for this script.
    const t = await engine.call('POST', '/v1/admin/tenants', ADMIN, {slug: TENANT, plan: 'pro'});
    check(t.status === 201, `tenant: ${t.status} ${JSON.stringify(t.body)}`);
    const key = async (role) => {
      const k = await engine.call('POST', `/v1/tenants/${TENANT}/keys`, t.body.api_key, {role});
      check(k.status === 201, `${role} key: ${k.status} ${JSON.stringify(k.body)}`);
      return k.body.api_key;
    };
    const reader = await key('reader');
    const producer = await key('producer');
    const compliance = await key('compliance');
    let n = 0;
    const receipts = new Map();  // event id -> offset
    const post = async () => {
      const id = `console-${++n}`;
      const r = await engine.call('POST', `/v1/tenants/${TENANT}/events`, producer,
        {specversion: '1.0', id, source: '/console-test', type: 'session.created', subject: `s-${n} <i>${n}</i>`,
          data: {sessionId: `s-${n}`}}, 'application/cloudevents+json');
      check(r.status === 201, `posting ${id}: ${r.status} ${JSON.stringify(r.body)}`);
      receipts.set(id, r.body.offset);
      return id;
    };

    // ---- The browser.
    browser = await puppeteer.launch({
      executablePath: chromium,
      headless: true,  // --headless=new
      userDataDir: path.join(dir, 'chromium'),
      args: ['--no-sandbox', '--disable-dev-shm-usage', '--no-first-run', '--disable-gpu'],
    });
    const page = await browser.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(`uncaught: ${e.message}`));
    page.on('console', (m) => {
      const text = m.text();
      if (/Content Security Policy|Uncaught/.test(text)) pageErrors.push(`console: ${text}`);
    });
    const noPageErrors = () => check(pageErrors.length === 0, `the page reported: ${pageErrors.join(' | ')}`);

    const nav = await page.goto(engine.url('/console'), {waitUntil: 'load'});
    check(page.url() === engine.url('/console/'), `/console lands on ${page.url()}`);
    check((nav.headers()['content-security-policy'] || '').includes("script-src 'self'"), 'the page carries the CSP');
    await page.waitForSelector('#login-form', {timeout: DEADLINE_MS});
    await page.type('#login-tenant', TENANT);
    await page.type('#login-token', 'aos_wrong_key');
    await page.click('#login-submit');
    await page.waitForFunction(() => /Not signed in/.test(document.getElementById('login-message').textContent),
      {timeout: DEADLINE_MS});
    check(await page.evaluate(() => sessionStorage.length === 0), 'a refused credential is not stored');
    await page.$eval('#login-token', (e) => { e.value = ''; });
    await page.type('#login-token', reader);
    await page.click('#login-submit');
    const status = () => page.$eval('#stream-status', (e) => ({...e.dataset, text: e.textContent}));
    await waitFor('the stream to be live', async () => (await status()).state === 'live');
    check(!page.url().includes(reader), 'the credential is not in the URL');
    pass('signed in with a reader key; the live stream is connected');

    // What the page shows: [{offset, id}] in page order.
    const rows = () => page.$$eval('#stream-rows tr.event', (trs) => trs.map((tr) => ({
      offset: Number(tr.dataset.offset), id: tr.dataset.id, type: tr.children[1].textContent})));
    const shows = async (ids) => {
      const shown = new Set((await rows()).map((r) => r.id));
      return ids.every((id) => shown.has(id));
    };

    const first = await post();
    await waitFor(`${first} on the page`, () => shows([first]));
    pass(`an event posted over HTTP appears live (${first} at offset ${receipts.get(first)})`);
    const live = [await post()];
    await waitFor('the second event on the page', () => shows(live));

    // ---- The engine dies; the page notices and retries; its token requests are held.
    let holding = true;
    const held = [];
    await page.setRequestInterception(true);
    page.on('request', (req) => {
      if (holding && req.url().endsWith('/stream-tokens')) held.push(req);
      else req.continue();
    });
    await engine.kill();
    step('engine killed (SIGKILL)');
    await waitFor('the page to notice the engine is gone', async () => (await status()).state === 'reconnecting');
    const port = engine.port;
    await engine.start(port);
    step(`engine restarted on port ${port} with the same data directory`);
    const whileAway = [await post(), await post(), await post()];
    check((await status()).state !== 'live', 'the page was disconnected while those events were posted');
    await waitFor('the page to ask for a stream token', () => held.length > 0);
    holding = false;
    for (const r of held.splice(0)) r.continue();
    await waitFor('the stream to be live again', async () => (await status()).state === 'live');
    await waitFor('the events posted while the page was away', () => shows(whileAway));
    pass('after an engine restart the page reconnected and shows the events posted while it was away');
    const after = [await post(), await post()];
    await waitFor('the events posted after the reconnect', () => shows(after));
    pass('events posted after the reconnect appear live');

    // ---- Exactly the log: from the offset the page started at, every record once, in order.
    const since = Number((await status()).first);
    check(Number.isInteger(since), `the page names the offset it started at (${(await status()).first})`);
    const logRecords = async () => {
      const out = [];
      let from = since;
      for (;;) {
        const r = await engine.call('GET', `/v1/tenants/${TENANT}/events?from=${from}&limit=1000`, reader);
        check(r.status === 200, `history: ${r.status}`);
        for (const e of r.body.events) out.push({offset: e.offset, id: e.event.id, type: e.event.type});
        if (r.body.events.length === 0 || r.body.next >= r.body.end) return out;
        from = r.body.next;
      }
    };
    const key3 = (r) => `${r.offset} ${r.type} ${r.id}`;
    let shown = [];
    let logged = [];
    try {
      // The processors keep appending what they derive; the page must follow to the same end.
      await waitFor('the page to show exactly the tenant\'s log since its first offset', async () => {
        [shown, logged] = [await rows(), await logRecords()];
        return shown.length === logged.length && shown.every((r, i) => key3(r) === key3(logged[i]));
      });
    } catch (e) {
      const seen = new Map();
      const repeated = shown.filter((r) => seen.set(r.offset, (seen.get(r.offset) || 0) + 1).get(r.offset) === 2);
      const shownSet = new Set(shown.map((r) => r.offset));
      const lost = logged.filter((r) => !shownSet.has(r.offset));
      const outOfOrder = shown.filter((r, i) => i > 0 && r.offset <= shown[i - 1].offset);
      throw new Failure(`${e.message}\n  page: ${shown.length} rows, log: ${logged.length} records since offset ${since}` +
        `\n  lost: ${lost.map(key3).join(', ') || 'none'}\n  repeated: ${repeated.map(key3).join(', ') || 'none'}` +
        `\n  out of order: ${outOfOrder.map(key3).join(', ') || 'none'}`);
    }
    for (const [id, offset] of receipts) {
      const at = shown.filter((r) => r.id === id);
      check(at.length === 1 && at[0].offset === offset, `${id} shown ${at.length} times, at ${at.map((r) => r.offset)} (receipt ${offset})`);
    }
    pass(`the page shows the tenant's log since offset ${since} exactly: ${shown.length} records, ` +
      `the ${receipts.size} posted events once each at their receipts' offsets`);

    // ---- The type filter over the whole history: only the posted session.created events
    // (not the tenant's creation, nor what Pulse derived from them).
    await page.$eval('#type-prefix', (e) => { e.value = ''; });
    await page.type('#type-prefix', 'session.created');
    await page.select('#start-from', '0');
    await page.click('#stream-apply');
    await waitFor('the filtered stream to be live', async () => (await status()).state === 'live');
    await waitFor('every posted event under the filter', () => shows([...receipts.keys()]));
    const filtered = await rows();
    check(filtered.every((r) => r.type.startsWith('session.created')), 'the filter shows only its types');
    check(filtered.length === receipts.size, `the filter shows ${filtered.length} events, ${receipts.size} posted`);
    pass('the type filter over the whole history shows exactly the matching events');
    const subject = await page.$eval('#stream-rows tr.event td:nth-child(4)', (td) => td.textContent);
    check(subject === 's-1 <i>1</i>' && (await page.$$('#stream-rows i')).length === 0,
      `a subject holding markup is shown as text (${subject})`);
    pass('data is shown as text, never as markup');

    if (!pgUrl) {
      step('skipped: the read-model pages (no PostgreSQL: run through CTest, which starts one)');
    } else {
      await readPages(page, engine, reader, producer, receipts, post, rows, shows, status, pass);
      await auditPages(page, engine, compliance, receipts, pass);
    }

    await page.click('#sign-out');
    await page.waitForSelector('#login-form', {timeout: DEADLINE_MS});
    check(await page.evaluate(() => sessionStorage.length === 0), 'signing out forgets the credential');
    pass('signing out forgets the credential');

    noPageErrors();
    pass('no page error and no Content-Security-Policy violation');
    console.log(`\n${passed} passed, 0 failed (${elapsed()})`);
    return 0;
  } catch (e) {
    console.log(`\nFAILED: ${e instanceof Failure ? e.message : e.stack}`);
    if (fs.existsSync(engine.logFile)) {
      const log = fs.readFileSync(engine.logFile, 'utf8').split('\n');
      console.log(`--- the engine's log (last 40 lines of ${log.length}) ---\n${log.slice(-40).join('\n')}`);
    }
    console.log(`\n${passed} passed, 1 failed (${elapsed()})`);
    return 1;
  } finally {
    if (browser) await browser.close().catch(() => {});
    await engine.kill();
    fs.rmSync(dir, {recursive: true, force: true});
  }
}

// The read-model pages against the engine's read models (PostgreSQL), then the stream page
// again.
async function readPages(page, engine, reader, producer, receipts, post, rows, shows, status, pass) {
  const get = async (p) => {
    const r = await engine.call('GET', `/v1/tenants/${TENANT}${p}`, reader);
    return r.status === 200 ? r.body : null;
  };
  const go = (hash) => page.evaluate((h) => { location.hash = h; }, hash);
  const texts = (selector) => page.$$eval(selector, (els) => els.map((e) => e.textContent));

  // Sessions: the read models have every posted session once Pulse and the projector have
  // the last receipt (?after=); the page lists them, by state, and a session's transitions.
  const last = Math.max(...receipts.values());
  const sessions = (await waitFor('the read models to have every session', async () => {
    const b = await get(`/sessions?after=${last}&limit=1000`);
    return b && b.sessions.length === receipts.size ? b : null;
  })).sessions;
  await go('#/sessions');
  const ids = () => texts('#sessions-list tbody tr td:first-child');
  await waitFor('the sessions page to list every session', async () =>
    JSON.stringify((await ids()).sort()) === JSON.stringify(sessions.map((x) => x.sessionId).sort()));
  const one = sessions[0];
  const absent = ['COMPLETE', 'FAILED', 'CANCELLED'].find((st) => !sessions.some((x) => x.state === st));
  await page.select('#session-state', absent);
  await waitFor(`no session in state ${absent}`, async () => page.url().endsWith(`#/sessions/${absent}`) &&
    (await texts('#sessions-list .notice')).join() === 'None.');
  await page.select('#session-state', one.state);
  const inState = sessions.filter((x) => x.state === one.state).map((x) => x.sessionId).sort();
  await waitFor(`the sessions in state ${one.state}`, async () =>
    page.url().endsWith(`#/sessions/${one.state}`) && JSON.stringify((await ids()).sort()) === JSON.stringify(inState));
  await page.click(`#sessions-list a[href="#/session/${one.sessionId}"]`);
  const transitions = (await get(`/sessions/${one.sessionId}/transitions`)).transitions;
  check(transitions.length > 0, `${one.sessionId} has transitions`);
  await waitFor(`${one.sessionId}'s transitions`, async () =>
    (await texts('#session-transitions tbody tr td:nth-child(2)')).join() === transitions.map((x) => x.to).join() &&
    (await texts('#session-fields dd')).includes(one.sessionId));
  pass(`sessions by state (${inState.length} ${one.state}) and ${one.sessionId}'s ${transitions.length} transitions`);

  // A check registered over HTTP, on the checks page; no alert is open.
  const check1 = await engine.call('POST', `/v1/tenants/${TENANT}/heartbeat/checks`, producer,
    {checkId: 'db-check', check: {name: 'database', schedule: {intervalSeconds: 60}, priority: 6}}, 'application/json',
    {'Idempotency-Key': 'console-check-1'});
  check(check1.status === 201, `registering a check: ${check1.status} ${JSON.stringify(check1.body)}`);
  await waitFor('the read models to have the check', async () =>
    ((await get(`/heartbeat/checks?after=${check1.body.offset}`)) || {checks: []}).checks.length === 1);
  await go('#/heartbeat');
  await waitFor('the check on the checks page', async () =>
    (await texts('#heartbeat-checks tbody tr td:first-child')).join() === 'db-check');
  await waitFor('no open alert', async () => (await texts('#heartbeat-alerts .notice')).join() === 'None.');
  pass('the checks page shows the registered check, and no open alert');

  // A dream whose seed is markup, nurtured with a signal whose note is markup: the garden,
  // then the dream's fields, history and signals, all as text.
  const seed = '<b>not markup</b>';
  const note = '<i>a note</i>';
  const dream = await engine.call('POST', `/v1/tenants/${TENANT}/dreams`, producer,
    {dreamId: 'd-1', seed, tags: ['console']}, 'application/json', {'Idempotency-Key': 'console-dream-1'});
  check(dream.status === 201, `planting a dream: ${dream.status} ${JSON.stringify(dream.body)}`);
  const signal = await engine.call('POST', `/v1/tenants/${TENANT}/dreams/d-1/signals`, producer,
    {source: 'console-test', score: 0.75, note}, 'application/json', {'Idempotency-Key': 'console-signal-1'});
  check(signal.status === 201, `nurturing the dream: ${signal.status} ${JSON.stringify(signal.body)}`);
  await waitFor('the read models to have the dream and its signal', async () =>
    ((await get(`/dreams/d-1/signals?after=${signal.body.offset}`)) || {signals: []}).signals.length === 1);
  const history = (await get('/dreams/d-1/history')).history;
  await go('#/dreams');
  await waitFor('the dream in the garden', async () =>
    (await texts('#dreams-list tbody tr td:first-child')).join() === 'd-1');
  await page.click('#dreams-list a[href="#/dream/d-1"]');
  await waitFor('the dream\'s fields, history and signals', async () => {
    const [fields, shownHistory, notes] = [await texts('#dream-fields dd'),
      await texts('#dream-history tbody tr td:first-child'), await texts('#dream-signals tbody tr td:nth-child(5)')];
    if (fields.includes(seed) && notes.join() === note && shownHistory.join() === history.map((h) => h.type).join())
      return true;
    throw new Error(`fields ${JSON.stringify(fields)}, history ${JSON.stringify(shownHistory)}, notes ${JSON.stringify(notes)}`);
  });
  check((await page.$$('#main b, #main i')).length === 0, 'the seed and the note are shown as text');
  pass(`the dreams pages show the dream, its history (${history.length}) and signal, markup as text`);

  // Back to the stream page (left since the sessions page; its filter is still
  // session.created): the session posted meanwhile is there, nothing twice.
  const away = await post();
  await go('#/stream');
  await waitFor('the stream to be live again', async () => (await status()).state === 'live');
  await waitFor(`${away}, posted while the page was elsewhere`, () => shows([away]));
  const shown = (await rows()).map((r) => r.offset);
  check(shown.length === receipts.size && shown.every((o, i) => i === 0 || o > shown[i - 1]),
    `the filtered stream after coming back: ${shown.join(',')} (${receipts.size} posted)`);
  pass('back on the stream page, it resumed with what was appended meanwhile, nothing twice');
}

// The audit pages: refused to the reader the page is signed in with, then signed in again
// with a compliance key: the trail filtered to the posted events, and one event's trace.
async function auditPages(page, engine, compliance, receipts, pass) {
  const go = (hash) => page.evaluate((h) => { location.hash = h; }, hash);
  const texts = (selector) => page.$$eval(selector, (els) => els.map((e) => e.textContent));
  await go('#/audit');
  await waitFor('the audit page to refuse the reader', async () =>
    /role reader may not do this/.test((await texts('#audit-list .notice.error')).join()));
  pass('the audit page refuses a reader key, with the engine\'s reason');

  await page.click('#sign-out');
  await page.waitForSelector('#login-form', {timeout: DEADLINE_MS});
  await page.type('#login-tenant', TENANT);
  await page.type('#login-token', compliance);
  await page.click('#login-submit');
  await page.waitForSelector('#nav:not([hidden])', {timeout: DEADLINE_MS});
  await go('#/audit');
  await page.waitForSelector('#audit-type', {timeout: DEADLINE_MS});
  await page.type('#audit-type', 'session.created');
  await page.click('#audit-apply');
  const posted = [...receipts.keys()];
  await waitFor('the trail to list the posted events', async () =>
    JSON.stringify(await texts('#audit-list tbody tr td:nth-child(4)')) === JSON.stringify(posted));
  const subjects = await texts('#audit-list tbody tr td:nth-child(5)');
  check(subjects[0] === 's-1 <i>1</i>' && (await page.$$('#audit-list i')).length === 0,
    `a subject holding markup is shown as text (${subjects[0]})`);
  pass(`the audit trail lists the ${posted.length} posted events in log order, markup as text`);

  await page.click(`#audit-list a[href="#/trace/${posted[0]}"]`);
  await waitFor(`the trace of ${posted[0]}`, async () => {
    const [depths, ids] = [await texts('#audit-trace tbody tr td:first-child'),
      await texts('#audit-trace tbody tr td:nth-child(5)')];
    return ids[0] === posted[0] && depths[0] === '0' && depths.length > 1 && depths.slice(1).every((d) => Number(d) >= 1);
  });
  const trail = await engine.call('GET', `/v1/tenants/${TENANT}/audit/events?type=audit.accessed`, compliance);
  check(trail.status === 200 && trail.body.events.length >= 1, `the page's reads are in the trail (${trail.status})`);
  pass(`the trace page shows ${posted[0]} and what it caused; the page's reads are recorded`);
}

process.exitCode = await main();
