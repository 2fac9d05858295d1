// The widget as a newcomer meets it: `arubug dev` serves /demo with the
// standalone script under a strict CSP; a report typed into the widget in
// real headless Chromium comes back through the admin API, triaged, with
// the page's console error and failed request.
//
// Run: cd siteapp-js && npm ci && ARUBUG_BIN=/path/to/arubug node --test test/demo.test.mjs
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BIN = process.env.ARUBUG_BIN;
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
// Screenshots of each state, for a person to look at after a run.
const SHOTS = new URL('../build/screenshots', import.meta.url).pathname;
const RULES = new URL('../../routing-rules/rules.yaml', import.meta.url).pathname;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
}

let proc, dataDir, base, browser, log = '';

before(async () => {
  assert.ok(BIN && existsSync(BIN), 'set ARUBUG_BIN to a built arubug binary (make build)');
  assert.ok(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}: apt-get install -y chromium`);
  dataDir = mkdtempSync(join(tmpdir(), 'arubug-demo-'));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  proc = spawn(BIN, ['dev', '--addr', `127.0.0.1:${port}`, '--data-dir', dataDir, '--rules-file', RULES, '--flush-interval', '200ms'], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const deadline = Date.now() + 60000;
  for (;;) {
    try { if ((await fetch(`${base}/_ready`)).ok) break; } catch {}
    assert.ok(Date.now() < deadline && proc.exitCode === null, `arubug dev did not become ready:\n${log}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
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

test('a report typed into the demo page is triaged with its context', async () => {
  const page = await browser.newPage({ viewport: { width: 800, height: 700 } });
  const cspViolations = [];
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text()); });
  await page.goto(`${base}/demo`);
  await page.click('#broken'); // logs an error and makes a failing request
  await page.getByRole('button', { name: 'Report a bug' }).click();
  await page.getByLabel('What happened?').fill('The <b>Pay now</b> button does nothing at all');
  await page.getByLabel('Email').fill('demo-user@example.com');
  await page.waitForTimeout(2000); // a person takes this long; faster is flagged as spam
  await page.getByRole('button', { name: 'Send report' }).click();
  const receipt = page.getByText(/Report ID/);
  await receipt.waitFor({ timeout: 15000 });
  const id = (await page.locator('code').first().textContent()).trim();
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, 'demo-receipt.png') });
  assert.deepEqual(cspViolations, [], 'the widget broke the page\'s Content-Security-Policy');

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
  assert.equal(report.title, 'The <b>Pay now</b> button does nothing at all');
  assert.equal(report.reporter_detail.email, 'demo-user@example.com');
  assert.equal(report.spam, false, report.spam_reason);
  assert.equal(report.url, `${base}/demo`);
  assert.ok(report.routing.team, 'no team');
  assert.ok(report.console.some((c) => c.message.includes('payment.intent is undefined')), JSON.stringify(report.console));
  assert.ok(report.network.some((n) => n.url.endsWith('/demo/api/pay') && n.status === 404), JSON.stringify(report.network));
});
