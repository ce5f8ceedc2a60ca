// Drives the dashboard in headless chromium (puppeteer-core, Debian's browser) for DashboardE2e:
// signs in, opens every page, asserts what is on screen, performs every action, and tries the
// cross-site requests that must be refused. Prints one JSON line of what it did; the C++ test then
// checks the database. Any failed expectation exits 1 with the reason on stderr.
//   env: DASH_URL, DASH_TOKEN (write), DASH_READ_TOKEN (scope=read), DASH_SHOTS (a folder),
//        DASH_FIXTURE (JSON ids from the test), CHROMIUM (the browser binary)
import http from 'node:http';
import puppeteer from 'puppeteer-core';

const base = process.env.DASH_URL;
const fx = JSON.parse(process.env.DASH_FIXTURE);
const shots = process.env.DASH_SHOTS;
const out = {};
const deadline = setTimeout(() => { console.error('check.mjs: over 90 s, giving up'); process.exit(3); }, 90_000);

function expect(cond, what) { if (!cond) throw new Error(`expected: ${what}`); }

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
});
// A page on another origin: the would-be attacker, serving forms that post to the API.
const evil = http.createServer((req, res) => {
  res.setHeader('Content-Type', 'text/html');
  res.end(`<!doctype html><body>
<form id="pause" method="POST" action="${base}/queues/billing/pause"></form>
<form id="enqueue" method="POST" enctype="text/plain" action="${base}/jobs"><input name='{"kind":"evil","x":"' value='"}'></form>
<script>document.getElementById(location.hash.slice(1)).submit()</script></body>`);
});
await new Promise((r) => evil.listen(0, '127.0.0.1', r));
const evilUrl = `http://127.0.0.1:${evil.address().port}/`;

try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const text = () => page.evaluate(() => document.body.innerText);
  const go = async (hash, selector) => {
    await page.goto(`${base}/${hash}`, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector(selector, { timeout: 10_000 });
  };
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png` });
  const click = async (selector) => { await page.waitForSelector(selector, { timeout: 10_000 }); await page.click(selector); };
  const clickText = async (scope, label) => {
    const h = await page.waitForSelector(`${scope} ::-p-text(${label})`, { timeout: 10_000 });
    await h.click();
  };

  // Sign-in: a wrong token is refused on screen, the right one gives the pages.
  await page.goto(base + '/', { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('#signin:not([hidden])');
  await page.type('#token', 'not-a-real-token-at-all');
  await page.click('#signin button');
  await page.waitForFunction(() => document.getElementById('signin-error').textContent.includes('invalid token'));
  await shot('signin');
  await page.type('#token', process.env.DASH_TOKEN);
  await page.click('#signin button');
  await page.waitForSelector('[data-page=overview] tr[data-queue=mail]');
  const cookies = await page.cookies();
  const session = cookies.find((c) => c.name === 'docket_session');
  expect(session && session.httpOnly && session.sameSite === 'Strict', `an HttpOnly SameSite=Strict cookie, got ${JSON.stringify(cookies)}`);
  expect(await page.evaluate(() => document.cookie) === '', 'the session cookie is not readable by script');
  // The cookie alone (no dashboard header) is not enough.
  out.cookie_without_header = await page.evaluate(async () => (await fetch('/queues')).status);
  expect(out.cookie_without_header === 401, `the cookie without X-Docket-Dashboard refused, got ${out.cookie_without_header}`);

  // Overview: every queue, the paused flag, the per-minute chart.
  let t = await text();
  expect(t.includes('reports') && t.includes('paused'), 'queue reports shown paused');
  const bars = await page.$$eval('tr[data-queue=mail] svg.chart rect.completed', (r) => r.length);
  expect(bars >= 1, `the mail chart has completed bars (${bars})`);
  await shot('overview');
  await clickText('tr[data-queue=mail]', 'Pause');
  await page.waitForSelector('tr[data-queue=mail] .state-paused');
  await clickText('tr[data-queue=reports]', 'Resume');
  await page.waitForFunction(() => !document.querySelector('tr[data-queue=reports] .state-paused'));

  // Kinds: running vs quota and timings; set a limit; retry all failed of a kind (confirmed).
  await go('#/kinds', '[data-page=kinds] tr[data-kind=send_email]');
  t = await text();
  expect(/send_email\s+1 \/ ∞/.test(t), 'send_email running 1 of no quota');
  expect(/\d+ ms \/ \d+ ms/.test(t), 'run/wait percentiles in ms');
  await shot('kinds');
  await page.type('tr[data-kind=send_email] input', '3');
  await clickText('tr[data-kind=send_email]', 'Set limit');
  await page.waitForFunction(() => document.querySelector('tr[data-kind=send_email]').innerText.includes('1 / 3'));
  await clickText('tr[data-kind=resize]', 'Retry all failed');
  await page.waitForSelector('tr[data-kind=resize] ::-p-text(Retry every failed resize job?)');
  await clickText('tr[data-kind=resize]', 'Confirm');
  await page.waitForFunction(() => document.getElementById('notice').textContent.includes('Retried 2 failed resize job(s)'));

  // Jobs: filters, keyset paging, live updates, cancel and retry.
  await go('#/jobs?state=failed&kind=send_email', `tr[data-job="${fx.failed}"]`);
  const states = await page.$$eval('tr[data-job] .badge', (b) => b.map((x) => x.textContent));
  expect(states.length > 0 && states.every((s) => s === 'failed'), `only failed jobs listed: ${states}`);
  await clickText(`tr[data-job="${fx.failed}"]`, 'Retry');
  // Retried, it leaves the failed list on the next render.
  await page.waitForFunction((id) => !document.querySelector(`tr[data-job="${id}"]`), {}, fx.failed);
  await go('#/jobs?kind=bulk', 'a#older');
  const first = await page.$$eval('tr[data-job]', (r) => r.map((x) => Number(x.dataset.job)));
  await page.click('a#older');
  await page.waitForFunction((min) => { const r = [...document.querySelectorAll('tr[data-job]')]; return r.length > 0 && r.every((x) => Number(x.dataset.job) < min); }, {}, Math.min(...first));
  const second = await page.$$eval('tr[data-job]', (r) => r.map((x) => Number(x.dataset.job)));
  out.pages = [first.length, second.length];
  expect(first.length === 50 && second.length === 10, `60 bulk jobs as 50 + 10, got ${out.pages}`);
  await go('#/jobs', 'tr[data-job]');
  const made = await page.evaluate(async () => {
    const r = await fetch('/jobs', { method: 'POST', headers: { 'X-Docket-Dashboard': '1', 'Content-Type': 'application/json' },
      body: JSON.stringify({ kind: 'live', args: { n: 1 } }) });
    return (await r.json()).id;
  });
  await page.waitForSelector(`tr[data-job="${made}"]`, { timeout: 6000 });  // appears without a reload
  out.live_job = made;
  await go('#/jobs?queue=mail', `tr[data-job="${fx.available}"]`);
  await shot('jobs');
  await clickText(`tr[data-job="${fx.available}"]`, 'Cancel');
  await page.waitForSelector(`tr[data-job="${fx.available}"] .state-cancelled`);

  // Job detail: args, every error with its attempt, result, progress, timeline.
  await go(`#/jobs/${fx.failed2}`, '[data-page=job] h1');
  t = await text();
  expect(t.includes('"to": "ops@example.com"'), 'args shown');
  expect(t.includes('smtp timeout') && t.includes('attempt 1 failed') && t.includes('attempt 2 failed'), 'errors and timeline shown');
  await shot('job-failed');
  await go(`#/jobs/${fx.completed}`, '[data-page=job] #result');
  t = await text();
  expect(t.includes('"sent": 12') && t.includes('completed'), 'result shown');
  expect(await page.$eval('.bar > span', (s) => s.style.width) === '100%', 'progress bar full');
  await shot('job');

  // Markup in a job's kind, queue, args and errors is shown as text and never runs.
  await go(`#/jobs/${fx.hostile}`, '[data-page=job] #args');
  t = await text();
  expect(t.includes('<script>window.pwned=2</script>') && t.includes('<img src=y onerror=window.pwned=3>')
    && t.includes('<img src=x onerror=window.pwned=1>') && t.includes('<b>bold</b>'), 'markup shown as text');
  for (const hash of ['#/overview', '#/kinds', '#/jobs?queue=%3Cb%3Ebold%3C%2Fb%3E']) {
    await go(hash, 'section[data-page] table');
    expect(await page.evaluate(() => window.pwned === undefined && !document.querySelector('#view img, #view b, #view script')),
      `no injected markup on ${hash}`);
  }

  // Workers, crawls, schedules.
  await go('#/workers', '[data-page=workers] table');
  t = await text();
  expect(t.includes('web-1') && t.includes('host-a') && t.includes('1 / 4'), 'worker web-1 on host-a using 1 of 4');
  await shot('workers');
  await go('#/crawls', '[data-page=crawls] table');
  t = await text();
  expect(t.includes('products') && t.includes('crawling') && t.includes('page 2 failed'), 'crawl row with status and last error');
  await shot('crawls');
  await go('#/schedules', '[data-page=schedules] tr[data-schedule=nightly]');
  await shot('schedules');
  await clickText('tr[data-schedule=nightly]', 'Run now');
  await page.waitForFunction(() => document.getElementById('notice').textContent.startsWith('Run now'));
  const said = await page.$eval('#notice', (n) => n.textContent);
  out.schedule_run = said.includes('no POST /schedules/{name}/run route') ? 'route_missing' : said.endsWith(': done') ? 'done' : said;

  // Cross-site: a form on another origin posting to the API, with the user signed in.
  // (Another port of 127.0.0.1 is the same *site*, so SameSite alone would let the cookie go:
  // the dashboard header is what refuses these.)
  for (const form of ['pause', 'enqueue']) {
    const p = await browser.newPage();
    const answered = new Promise((resolve) => p.on('response', (r) => { if (r.url().startsWith(base)) resolve(r.status()); }));
    await p.goto(`${evilUrl}#${form}`);
    out[`cross_site_${form}`] = await Promise.race([answered, new Promise((r) => setTimeout(() => r(0), 10_000))]);
    await p.close();
  }
  expect(out.cross_site_pause >= 400 && out.cross_site_enqueue >= 400, `cross-site posts refused: ${JSON.stringify(out)}`);

  // A read-only token sees the pages without actions, and the API refuses its writes.
  const ro = await browser.createBrowserContext();
  const rp = await ro.newPage();
  await rp.goto(base + '/', { waitUntil: 'domcontentloaded' });
  await rp.waitForSelector('#signin:not([hidden])');
  await rp.type('#token', process.env.DASH_READ_TOKEN);
  await rp.click('#signin button');
  await rp.waitForSelector('[data-page=overview] tr[data-queue=billing]');
  expect(await rp.$eval('body', (b) => b.classList.contains('readonly')), 'read-only page');
  const visible = await rp.$$eval('#view button', (b) => b.filter((x) => x.offsetParent !== null).length);
  expect(visible === 0, `no action visible to a read-only token (${visible})`);
  out.read_only_write = await rp.evaluate(async () =>
    (await fetch('/queues/billing/pause', { method: 'POST', headers: { 'X-Docket-Dashboard': '1' } })).status);
  expect(out.read_only_write === 403, `a read-only write refused with 403, got ${out.read_only_write}`);
  await ro.close();

  // Sign out ends the session on the server.
  await page.goto(`${base}/#/overview`, { waitUntil: 'domcontentloaded' });
  await click('#signout:not([hidden])');
  await page.waitForSelector('#signin:not([hidden])');
  out.after_signout = await page.evaluate(async () => (await fetch('/queues', { headers: { 'X-Docket-Dashboard': '1' } })).status);
  expect(out.after_signout === 401, `signed out: 401, got ${out.after_signout}`);
  expect(errors.length === 0, `no script errors: ${errors}`);
  out.ok = true;
  console.log(JSON.stringify(out));
} catch (e) {
  console.error(String(e.stack || e));
  console.log(JSON.stringify({ ...out, ok: false, error: String(e.message || e) }));
  process.exitCode = 1;
} finally {
  clearTimeout(deadline);
  evil.close();
  await browser.close();
}
