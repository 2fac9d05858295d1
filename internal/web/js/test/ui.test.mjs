// The web UI as a person uses it, in headless Chromium against the real
// binary (`arubug dev`: managed ClickHouse and the built-in Zendesk
// simulator). Seeds reports and exceptions through the capture API, agent
// replies through the simulator, then signs in, reads the charts, opens a
// report, replies, adds a note, re-routes, and checks that hostile text
// stays text and that requests without the session or the CSRF token are
// refused. Screenshots of every page land in internal/web/build/screenshots.
//
// Run: cd internal/web/js && npm ci && ARUBUG_BIN=/path/to/arubug node --test test/
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BIN = process.env.ARUBUG_BIN;
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SHOTS = new URL('../../build/screenshots', import.meta.url).pathname;
const RULES = new URL('../../../../routing-rules/rules.yaml', import.meta.url).pathname;
const TOKEN = 'phc_arubug_dev';
const HOSTILE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> Checkout total shows NaN';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, fn, timeout = 30000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}\n${log.slice(-4000)}`);
    await sleep(250);
  }
}

let proc, dataDir, base, simURL, admin, browser, context, page, log = '';
const cspViolations = [];
// Seeded reports: id → what was sent.
const reports = [];

async function adminGet(path) {
  const res = await fetch(`${base}${path}`, { headers: { Authorization: `Bearer ${admin}` } });
  return res.ok ? res.json() : null;
}

async function send(events) {
  const res = await fetch(`${base}/batch/`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ api_key: TOKEN, batch: events }) });
  assert.equal(res.status, 200, await res.text());
}

async function seed() {
  const now = Date.now();
  const H = 3600e3, D = 24 * H;
  const specs = [
    { area: 'billing', sev: 'high', path: '/billing/invoices/7', days: 0, desc: 'Invoice PDF download fails with a 500', user: 'ana@acme.test' },
    { area: 'billing', sev: 'critical', path: '/billing/checkout', days: 1, desc: HOSTILE, user: 'bo@acme.test' },
    { area: 'billing', sev: 'medium', path: '/billing', days: 3, desc: 'Card form rejects a valid expiry date', user: 'cy@shop.test' },
    { area: 'product-analytics', sev: 'medium', path: '/insights/42', days: 0, desc: 'Funnel insight never finishes loading', user: 'di@acme.test' },
    { area: 'product-analytics', sev: 'low', path: '/insights/42', days: 2, desc: 'Legend overlaps the chart on small screens', user: 'ed@shop.test' },
    { area: 'product-analytics', sev: 'high', path: '/dashboard/3', days: 4, desc: 'Dashboard tiles show stale data', user: 'fa@acme.test' },
    { area: 'session-replay', sev: 'medium', path: '/replay/abc', days: 1, desc: 'Replay player freezes after 10 seconds', user: 'gu@shop.test' },
    { area: 'session-replay', sev: 'low', path: '/replay/def', days: 5, desc: 'Replay timeline has no scrubber labels', user: 'ha@acme.test' },
    { area: 'feature-flags', sev: 'high', path: '/feature_flags/12', days: 2, desc: 'Flag rollout percentage resets on save', user: 'io@acme.test' },
    { area: 'surveys', sev: 'low', path: '/surveys/new', days: 3, desc: 'Survey preview is blank', user: 'ju@shop.test' },
  ];
  // Exceptions first, so that each report's usage finds the one before it.
  const exceptions = specs.map((s, i) => ({
    event: '$exception', distinct_id: s.user, uuid: randomUUID(), timestamp: new Date(now - s.days * D - 2 * H - 60e3).toISOString(),
    properties: { $exception_type: 'TypeError', $exception_message: i % 2 ? 'Cannot read properties of undefined (reading \'total\')' : 'NetworkError when attempting to fetch resource', $pathname: s.path },
  }));
  await send(exceptions);
  await sleep(1500); // past a drain of the spool into ClickHouse
  const events = specs.map((s) => {
    const id = randomUUID();
    reports.push({ id, ...s });
    return {
      event: '$bug_report', distinct_id: s.user, uuid: id, timestamp: new Date(now - s.days * D - 2 * H).toISOString(),
      properties: {
        $description: s.desc, $product_area: s.area, $severity: s.sev, $email: s.user, $name: s.user.split('@')[0],
        $pathname: s.path, $current_url: `https://app.example.com${s.path}`, $host: 'app.example.com', $session_id: randomUUID(),
        $time_to_submit_ms: 12000, $raw_user_agent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36',
        $console: [{ level: 'error', message: 'TypeError: total is undefined', at: new Date(now - s.days * D - 2 * H - 5000).toISOString() }],
        $network: [{ method: 'POST', url: `https://app.example.com/api${s.path}`, status: 500, duration_ms: 321, at: new Date(now - s.days * D - 2 * H - 4000).toISOString() }],
      },
    };
  });
  await send(events);
  for (const r of reports) {
    r.detail = await until(`report ${r.id} triaged`, () => adminGet(`/api/v1/reports/${r.id}`));
  }
  // Agents answer three tickets in the simulator: the first-response chart.
  for (const r of reports.slice(3, 6)) {
    const th = await until(`ticket of ${r.id}`, async () => { const t = await adminGet(`/api/v1/reports/${r.id}/thread`); return t && t.ticket.id ? t : null; });
    r.ticket = th.ticket.id;
    const res = await fetch(`${simURL}/_sim/tickets/${r.ticket}/agent_reply`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ body: 'We are looking into it.', public: true }) });
    assert.equal(res.status, 201, await res.text());
  }
  for (const r of reports.slice(3, 6)) {
    await until(`agent reply on ${r.id}`, async () => {
      const t = await adminGet(`/api/v1/reports/${r.id}/thread`);
      return t && t.messages.some((m) => m.kind === 'agent_reply');
    });
  }
}

before(async () => {
  assert.ok(BIN && existsSync(BIN), 'set ARUBUG_BIN to a built arubug binary (make build)');
  assert.ok(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}: apt-get install -y chromium`);
  dataDir = mkdtempSync(join(tmpdir(), 'arubug-ui-'));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  proc = spawn(BIN, ['dev', '--addr', `127.0.0.1:${port}`, '--data-dir', dataDir, '--rules-file', RULES, '--flush-interval', '200ms'], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  await until('arubug dev to be ready', async () => {
    try { return (await fetch(`${base}/_ready`)).ok; } catch { return false; }
  }, 90000);
  const m = await until('the dev banner', () => log.match(/Zendesk simulator\s+(http:\/\/[0-9.:]+)\/_sim\//));
  simURL = m[1];
  assert.match(log, new RegExp(`Web UI\\s+${base.replace(/[.]/g, '\\.')}/ui/`), 'the dev banner names the web UI');
  admin = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  await seed();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.on('console', (msg) => { if (/Content Security Policy|Refused to/i.test(msg.text())) cspViolations.push(msg.text()); });
  page.on('pageerror', (err) => cspViolations.push('page error: ' + err.message));
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  if (browser) await browser.close();
  if (proc && proc.exitCode === null) {
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 15000);
    await new Promise((r) => proc.once('exit', r));
    clearTimeout(t);
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const shot = (name, opts = {}) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true, ...opts });
const hostileReport = () => reports.find((r) => r.desc === HOSTILE);

test('/ leads to the sign-in page, a wrong token is refused, the right one signs in', async (t) => {
  const t0 = Date.now();
  const lap = (what) => t.diagnostic(`${what}: ${Date.now() - t0} ms`);
  await page.goto(`${base}/`);
  lap('sign-in page');
  assert.match(page.url(), /\/ui\/signin\?next=/);
  await page.getByLabel('Admin token').fill('not-the-token-at-all');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('That is not the admin token.').waitFor();
  lap('wrong token refused');
  await shot('signin-error');
  lap('screenshot');
  await page.getByLabel('Admin token').fill(admin);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  lap('overview');
  assert.equal(new URL(page.url()).pathname, '/ui/');
  const [cookie] = (await context.cookies()).filter((c) => c.name === 'arubug_ui');
  assert.ok(cookie && cookie.httpOnly && cookie.sameSite === 'Strict', JSON.stringify(cookie));
});

test('the overview draws its charts with data, and the keyboard reads them', async () => {
  await page.goto(`${base}/ui/?days=7`);
  for (const id of ['reports-by-team', 'reports-by-area', 'first-response', 'open-solved']) {
    await page.locator(`#${id}[data-state="ready"]`).waitFor({ timeout: 20000 });
    assert.equal(await page.locator(`#${id} canvas`).count(), 1, `${id} has no canvas: ${await page.locator(`#${id} .chart-status`).textContent()}`);
  }
  // The legend lists the teams that have reports, the table holds the numbers.
  const legend = await page.locator('#reports-by-team .u-legend').textContent();
  for (const team of ['billing', 'product-analytics', 'session-replay']) assert.ok(legend.includes(team), legend);
  const cells = await page.locator('#reports-by-team .chart-table tbody td').allTextContents();
  // `arubug dev` may seed a synthetic history too: at least ours are there.
  assert.ok(cells.map(Number).reduce((a, b) => a + b, 0) >= reports.length, 'the table holds fewer reports than were sent');
  assert.ok((await page.locator('#first-response .u-legend').textContent()).includes('Median'));
  await page.locator('#reports-by-team .plot').focus();
  await page.keyboard.press('End');
  assert.match(await page.locator('#reports-by-team .chart-status').textContent(), /: .*billing \d/);
  // Top lists come from the same trends.
  const pages = await page.locator('section:has(h2:text("Top pages")) td').allTextContents();
  assert.ok(pages.includes('/insights/42'), pages.join(','));
  assert.equal(await page.locator('section:has(h2:text("Top errors")) :is(table, .empty)').count(), 1);
  await page.locator('body').click({ position: { x: 5, y: 5 } });
  await shot('overview');
  await page.emulateMedia({ colorScheme: 'dark' });
  await sleep(300);
  await shot('overview-dark');
  await page.emulateMedia({ colorScheme: 'light' });
  await page.setViewportSize({ width: 420, height: 900 });
  await sleep(300);
  await shot('overview-mobile');
  await page.setViewportSize({ width: 1280, height: 900 });
  assert.deepEqual(cspViolations, [], 'the overview broke its Content-Security-Policy');
});

test('a team queue lists its reports with Zendesk status, ticket and replay links', async () => {
  await page.goto(`${base}/ui/teams/billing`);
  const rows = page.locator('table.queue tbody tr');
  await rows.first().waitFor();
  assert.ok(await rows.count() >= 3);
  const text = await page.locator('table.queue').textContent();
  assert.ok(text.includes('Invoice PDF download fails'), text);
  assert.ok(await page.locator('table.queue a[href*="/_sim/#ticket-"]').count() >= 1, 'no link to the ticket on the Zendesk simulator (dev has no account)');
  assert.ok(await page.locator('table.queue a:text("Replay")').count() >= 1, 'no replay link');
  await page.selectOption('select[name=sort]', 'severity');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.waitForURL(/sort=severity/);
  assert.match(await rows.first().textContent(), /critical/);
  await shot('team-queue');
  await page.getByLabel('Search').fill('invoice');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.waitForURL(/q=invoice/);
  const found = await rows.allTextContents();
  assert.ok(found.length >= 1 && found.every((t) => /invoice/i.test(t)), found.join('\n'));
});

test('a report page shows its context, and a description with HTML and script renders as text', async () => {
  const r = hostileReport();
  await page.goto(`${base}/ui/teams/billing?q=${encodeURIComponent('window.__xss')}`);
  assert.equal(await page.evaluate(() => window.__xss), undefined, 'the title ran as script in the queue');
  await page.locator('table.queue tbody tr', { hasText: 'window.__xss=2' }).getByRole('link').first().click();
  await page.waitForURL(new RegExp(`/ui/reports/${r.id}`));
  assert.equal((await page.locator('.description').textContent()).trim(), HOSTILE);
  assert.equal(await page.locator('.description img, .description script').count(), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined, 'the description ran as script');
  const body = await page.locator('main').textContent();
  for (const want of ['TypeError: total is undefined', '/api/billing/checkout', 'Why', 'Similar reports', 'bo@acme.test', 'Chrome']) {
    assert.ok(body.includes(want), `report page lacks ${want}`);
  }
  assert.ok(await page.locator('a:text("Watch the session replay")').count() === 1);
  await shot('report');
});

async function simPage() { return (await fetch(`${simURL}/_sim/`)).text(); }

test('a reply sent from the report page reaches the simulator and the conversation', async () => {
  const r = hostileReport();
  await page.goto(`${base}/ui/reports/${r.id}`);
  const reply = `Thanks Bo, we found the NaN bug ${randomUUID().slice(0, 8)}`;
  await page.getByLabel(/Reply to the reporter/).fill(reply);
  await page.getByRole('button', { name: 'Send reply' }).click();
  await page.getByText('Reply queued').waitFor();
  await until('the reply in the simulator', async () => (await simPage()).includes(reply));
  await until('the reply in the conversation', async () => {
    await page.reload();
    return (await page.locator('.thread').textContent()).includes(reply);
  });
  await shot('report-reply');
});

test('an internal note reaches the simulator as a private comment', async () => {
  const r = hostileReport();
  await page.goto(`${base}/ui/reports/${r.id}`);
  const note = `Same as the checkout rounding issue ${randomUUID().slice(0, 8)}`;
  await page.getByLabel(/Internal note/).fill(note);
  await page.getByRole('button', { name: 'Add note' }).click();
  await page.getByText('Internal note queued').waitFor();
  await until('the note in the simulator', async () => /class="c private"[^]*?<pre>Same as the checkout/.test(await simPage()) && (await simPage()).includes(note));
  await until('the note in the conversation', async () => {
    await page.reload();
    return (await page.locator('.thread .kind-note').allTextContents()).some((t) => t.includes(note));
  });
});

test('re-routing from the report page moves the report', async () => {
  const r = reports.find((x) => x.path === '/billing');
  await page.goto(`${base}/ui/reports/${r.id}`);
  await page.getByLabel('Team', { exact: true }).selectOption('platform');
  await page.getByLabel(/Reason/).fill('Card forms belong to platform');
  await page.getByRole('button', { name: 'Re-route' }).click();
  await page.getByText('Report re-routed.').waitFor();
  const routing = await page.locator('#routing').textContent();
  assert.ok(routing.includes('re-routed by an admin from billing to platform: Card forms belong to platform'), routing);
  const d = await adminGet(`/api/v1/reports/${r.id}`);
  assert.equal(d.routing.team, 'platform');
  await shot('report-rerouted');
});

test('requests without the session or without the CSRF token are refused', async () => {
  const r = hostileReport();
  const body = `forged ${randomUUID()}`;
  const form = (extra) => new URLSearchParams({ body, ...extra }).toString();
  const headers = { 'Content-Type': 'application/x-www-form-urlencoded', Origin: base };
  // No session at all.
  let res = await fetch(`${base}/ui/reports/${r.id}/reply`, { method: 'POST', headers, body: form({ csrf: 'x' }), redirect: 'manual' });
  assert.equal(res.status, 403);
  res = await fetch(`${base}/ui/reports/${r.id}`, { redirect: 'manual' });
  assert.equal(res.status, 303);
  // The session, but no token or a wrong one, from inside the signed-in page.
  await page.goto(`${base}/ui/reports/${r.id}`);
  const statuses = await page.evaluate(async ({ id, body }) => {
    const post = (csrf) => fetch(`/ui/reports/${id}/reply`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(csrf === null ? { body } : { body, csrf }).toString() }).then((x) => x.status);
    return [await post(null), await post('wrong-token')];
  }, { id: r.id, body });
  assert.deepEqual(statuses, [403, 403]);
  // The session cookie, but a request from another origin.
  const cookie = (await context.cookies()).find((c) => c.name === 'arubug_ui');
  const csrf = await page.locator('input[name=csrf]').first().getAttribute('value');
  res = await fetch(`${base}/ui/reports/${r.id}/reply`, { method: 'POST', headers: { ...headers, Origin: 'https://evil.example', Cookie: `arubug_ui=${cookie.value}` }, body: form({ csrf }), redirect: 'manual' });
  assert.equal(res.status, 403);
  await sleep(1500);
  assert.ok(!(await simPage()).includes(body), 'a refused request reached Zendesk');
});

test('the rules page shows the live rules and routes a sample report', async () => {
  await page.goto(`${base}/ui/rules`);
  assert.ok((await page.locator('table.routes').textContent()).includes('spam'));
  await page.getByText(/Last reload at .*: OK/).waitFor();
  await page.getByLabel('Page URL').fill('https://app.example.com/billing/invoices/9');
  await page.getByLabel('Description').fill('The invoice total is wrong');
  await page.getByLabel('Product area').selectOption('billing');
  await page.getByRole('button', { name: 'Route it' }).click();
  const result = page.locator('.result');
  await result.waitFor();
  const text = await result.textContent();
  assert.match(text, /Team\s*billing/, text);
  await shot('rules');
  assert.deepEqual(cspViolations, [], 'a page broke its Content-Security-Policy');
});
