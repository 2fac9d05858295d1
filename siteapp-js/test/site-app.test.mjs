// The widget as a PostHog site app: the real posthog-js, initialised with
// opt_in_site_apps against Arubug, finds the site app in the collector's
// remote config, loads it by itself, and a report typed into it comes back
// through the admin API.
//
// Run: cd siteapp-js && npm ci && ARUBUG_BIN=/path/to/arubug node --test test/site-app.test.mjs
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { createServer as createHTTPServer } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BIN = process.env.ARUBUG_BIN;
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const RULES = new URL('../../routing-rules/rules.yaml', import.meta.url).pathname;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
}

let proc, dataDir, base, browser, page, pageServer, log = '';
const require = createRequire(import.meta.url);
const POSTHOG = readFileSync(require.resolve('posthog-js/dist/array.full.js'));

before(async () => {
  assert.ok(BIN && existsSync(BIN), 'set ARUBUG_BIN to a built arubug binary (make build)');
  assert.ok(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}: apt-get install -y chromium`);
  dataDir = mkdtempSync(join(tmpdir(), 'arubug-demo-'));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  proc = spawn(BIN, ['dev', '--addr', `127.0.0.1:${port}`, '--data-dir', dataDir, '--rules-file', RULES, '--flush-interval', '200ms', '--site-app'], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const deadline = Date.now() + 60000;
  for (;;) {
    try { if ((await fetch(`${base}/_ready`)).ok) break; } catch {}
    assert.ok(Date.now() < deadline && proc.exitCode === null, `arubug dev did not become ready:\n${log}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  pageServer = createHTTPServer((req, res) => {
    if (req.url === '/posthog.js') {
      res.writeHead(200, { 'Content-Type': 'application/javascript' });
      return res.end(POSTHOG);
    }
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(`<!doctype html><html><body><h1>Shop</h1><script src="/posthog.js"></script><script>
      posthog.init('phc_arubug_dev', { api_host: '${base}', opt_in_site_apps: true, opt_out_useragent_filter: true, disable_session_recording: true });
    </script></body></html>`);
  });
  await new Promise((r) => pageServer.listen(0, '127.0.0.1', r));
  page = `http://127.0.0.1:${pageServer.address().port}/`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
});

after(async () => {
  if (browser) await browser.close();
  if (pageServer) pageServer.close();
  if (proc && proc.exitCode === null) {
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 15000);
    await new Promise((r) => proc.once('exit', r));
    clearTimeout(t);
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test('posthog-js loads the site app from the collector and a report arrives', async () => {
  const tab = await browser.newPage({ viewport: { width: 800, height: 700 } });
  const failed = [];
  tab.on('response', (r) => { if (r.url().startsWith(base) && r.status() >= 400) failed.push(`${r.status()} ${r.url()}`); });
  await tab.goto(page);
  const launcher = tab.getByRole('button', { name: 'Report a bug' });
  await launcher.waitFor({ timeout: 20000 });
  await launcher.click();
  await tab.getByLabel('What happened?').fill('Checkout total is wrong in the site app');
  await tab.getByLabel('Email').fill('site-app@example.com');
  await tab.waitForTimeout(2000);
  await tab.getByRole('button', { name: 'Send report' }).click();
  await tab.getByText(/Report ID/).waitFor({ timeout: 15000 });
  const id = (await tab.locator('code').first().textContent()).trim();
  const distinctId = await tab.evaluate(() => window.posthog.get_distinct_id());
  assert.deepEqual(failed, [], 'requests to the collector failed');

  const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  let report;
  const deadline = Date.now() + 20000;
  while (!report) {
    const res = await fetch(`${base}/api/v1/reports/${id}`, { headers: { Authorization: `Bearer ${token}` } });
    if (res.ok) report = await res.json();
    else {
      assert.ok(Date.now() < deadline, `report ${id} not triaged (last ${res.status})\n${log}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  assert.equal(report.title, 'Checkout total is wrong in the site app');
  assert.equal(report.reporter_detail.distinct_id, distinctId, 'the report is not tied to posthog-js\'s person');
  assert.ok(report.session_id, 'no posthog-js session id');
});
