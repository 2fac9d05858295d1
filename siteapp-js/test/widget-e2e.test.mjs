// The widget end to end: the built bundles served by the real collector
// (`arubug dev`, managed ClickHouse) and driven in real headless Chromium.
// Every case reads the stored `$bug_report` row (and the screenshots table)
// back from ClickHouse, not just what the browser showed.
//
//   offline     the report waits in localStorage while offline and is
//               delivered once back online: exactly one stored row
//   beacon      a report still in flight when the page goes away is sent
//               with navigator.sendBeacon
//   redaction   console errors, failing fetch and XHR with secret query
//               strings, an Authorization header and a password field:
//               stored redacted, no secret anywhere in the row
//   screenshot  /demo with the screenshot on: lazy chunk from the widget's
//               own directory, preview, stored JPEG with the card number
//               field painted over
//   posthog     /demo/posthog: the real posthog-js loads the site app and
//               the report carries posthog-js's distinct id and session id
//
// Run: cd siteapp-js && npm ci && ARUBUG_BIN=/path/to/arubug node --test test/widget-e2e.test.mjs
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

const BIN = process.env.ARUBUG_BIN;
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CLICKHOUSE_CLIENT = process.env.CLICKHOUSE_CLIENT || 'clickhouse-client';
const SHOTS = new URL('../build/screenshots', import.meta.url).pathname;
const RULES = new URL('../../routing-rules/rules.yaml', import.meta.url).pathname;
const HUMAN_MS = 2000; // faster than this is flagged as spam

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
}

let proc, dataDir, base, chPort, browser, pageServer, origin, scriptUrl, log = '';

function clickhouse(sql) {
  return new Promise((resolve, reject) => {
    execFile(CLICKHOUSE_CLIENT, ['--host', '127.0.0.1', '--port', String(chPort), '-q', sql], { timeout: 15_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(`clickhouse-client: ${err.message}\n${stderr}`)) : resolve(stdout));
  });
}

async function rows(sql) {
  return (await clickhouse(sql + ' FORMAT JSONEachRow')).split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
}

// storedReports returns every raw row (no FINAL: a duplicate would show) of the report.
async function storedReports(uuid) {
  // (ClickHouse 18.16 resolves an alias named like a column in WHERE: "id".)
  return rows(`SELECT toString(uuid) AS id, event, distinct_id, session_id, window_id, current_url, pathname, lib, properties
    FROM arubug.events WHERE uuid = toUUID('${uuid}')`);
}

async function waitStored(uuid, what) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await storedReports(uuid);
    if (r.length) {
      await sleep(1500); // a second copy, if any, would land by now (flush interval 200 ms)
      return storedReports(uuid);
    }
    assert.ok(Date.now() < deadline, `${what}: report ${uuid} never stored\n${log.slice(-3000)}`);
    await sleep(300);
  }
}

before(async () => {
  assert.ok(BIN && existsSync(BIN), 'set ARUBUG_BIN to a built arubug binary (make build)');
  assert.ok(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}: apt-get install -y chromium`);
  dataDir = mkdtempSync(join(tmpdir(), 'arubug-widget-e2e-'));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  proc = spawn(BIN, ['dev', '--addr', `127.0.0.1:${port}`, '--data-dir', dataDir, '--rules-file', RULES, '--flush-interval', '200ms', '--log-format', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const onData = (d) => {
    log += d;
    const m = /"msg":"managed clickhouse-server ready"[^\n]*"tcp":"[^"]*:(\d+)"/.exec(log);
    if (m) chPort = Number(m[1]);
  };
  proc.stdout.on('data', onData);
  proc.stderr.on('data', onData);
  const deadline = Date.now() + 60_000;
  for (;;) {
    try { if ((await fetch(`${base}/_ready`)).ok) break; } catch {}
    assert.ok(Date.now() < deadline && proc.exitCode === null, `arubug dev did not become ready:\n${log}`);
    await sleep(200);
  }
  assert.ok(chPort, `no managed ClickHouse port in the log:\n${log}`);
  // The widget's versioned URL, as the demo page has it.
  const demo = await (await fetch(`${base}/demo`)).text();
  scriptUrl = base + /src="(\/static\/arubug\/[0-9a-f]+\/arubug\.js)"/.exec(demo)[1];

  // A shop on another origin (so CORS is exercised) that embeds the widget.
  pageServer = createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    if (u.pathname === '/api/fail') return res.writeHead(500).end('down');
    if (u.pathname === '/api/xhr-fail') return res.writeHead(404).end('nope');
    if (u.pathname === '/hold.js') {
      // Reports to the collector never get an answer (so one is still in
      // flight when the page goes away), and beacons are recorded.
      return res.writeHead(200, { 'Content-Type': 'text/javascript' }).end(`
        const realFetch = window.fetch;
        window.fetch = function (u, init) {
          if (String(u).endsWith('/e/')) return new Promise(function () {});
          return realFetch.apply(this, arguments);
        };
        const realBeacon = navigator.sendBeacon.bind(navigator);
        navigator.sendBeacon = function (url, data) {
          const ok = realBeacon(url, data);
          const seen = JSON.parse(localStorage.getItem('test:beacons') || '[]');
          seen.push({ url: String(url), ok: ok });
          localStorage.setItem('test:beacons', JSON.stringify(seen));
          return ok;
        };`);
    }
    const csp = `default-src 'self'; script-src 'self' ${base}; style-src 'self'; connect-src 'self' ${base}; img-src 'self' data:`;
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Security-Policy': csp });
    if (u.pathname === '/blank') return res.end('<!doctype html><title>elsewhere</title><p>Another page, without the widget.</p>');
    res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop</title></head><body>
<h1>Shop</h1>
<form><label for="user">User</label><input id="user" value="ann">
<label for="pw">Password</label><input id="pw" type="password" autocomplete="off"></form>
${u.searchParams.has('hold') ? '<script src="/hold.js"></script>' : ''}
<script src="${scriptUrl}" data-token="phc_arubug_dev" data-host="${base}"></script>
</body></html>`);
  });
  await new Promise((r) => pageServer.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${pageServer.address().port}`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  if (browser) await browser.close();
  if (pageServer) pageServer.close();
  if (proc && proc.exitCode === null) {
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
    await new Promise((r) => proc.once('exit', r));
    clearTimeout(t);
    assert.equal(proc.exitCode, 0, `arubug dev exited with ${proc.exitCode}\n${log.slice(-3000)}`);
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

async function fillReport(page, description, email = 'e2e@example.com') {
  await page.getByRole('button', { name: 'Report a bug' }).click();
  await page.getByLabel('What happened?').fill(description);
  await page.getByLabel('Email').fill(email);
  await page.waitForTimeout(HUMAN_MS);
}

async function pendingReports(page) {
  return JSON.parse((await page.evaluate(() => localStorage.getItem('arubug:pending'))) || '[]');
}

describe('widget end to end against arubug dev and ClickHouse', { timeout: 240_000 }, () => {
  test('offline: the report waits in localStorage and is stored exactly once after reconnecting', async () => {
    const ctx = await browser.newContext({ viewport: { width: 800, height: 700 } });
    const page = await ctx.newPage();
    await page.goto(`${origin}/shop`);
    await fillReport(page, 'Offline report: search never returns');
    await ctx.setOffline(true);
    await page.getByRole('button', { name: 'Send report' }).click();
    await page.getByText(/You seem to be offline/).waitFor({ timeout: 10_000 });
    await page.screenshot({ path: join(SHOTS, 'widget-offline.png') });
    const pending = await pendingReports(page);
    assert.equal(pending.length, 1, 'the report is queued in localStorage');
    const { uuid } = pending[0];
    await sleep(1000);
    assert.equal((await storedReports(uuid)).length, 0, 'nothing can arrive while offline');

    await ctx.setOffline(false); // fires "online": the queue is flushed
    const shown = await page.locator('[data-report-id]').textContent({ timeout: 15_000 });
    assert.equal(shown, uuid, 'the error view turns into the receipt once delivered');
    await page.screenshot({ path: join(SHOTS, 'widget-offline-delivered.png') });
    assert.deepEqual(await pendingReports(page), [], 'the queue is empty');
    const stored = await waitStored(uuid, 'offline');
    assert.equal(stored.length, 1, `exactly one row for ${uuid}: ${JSON.stringify(stored.map((r) => r.id))}`);
    assert.equal(stored[0].event, '$bug_report');
    assert.equal(JSON.parse(stored[0].properties).$description, 'Offline report: search never returns');
    // A reload does not send it again.
    await page.reload();
    await page.getByRole('button', { name: 'Report a bug' }).waitFor();
    await sleep(1500);
    assert.equal((await storedReports(uuid)).length, 1, 'no second row after a reload');
    await ctx.close();
  });

  test('beacon: a report still in flight when the page goes away is sent with sendBeacon', async () => {
    const ctx = await browser.newContext({ viewport: { width: 800, height: 700 } });
    const page = await ctx.newPage();
    await page.goto(`${origin}/shop?hold`);
    await fillReport(page, 'Beacon report: the page was closed while sending');
    await page.getByRole('button', { name: 'Send report' }).click();
    await page.getByRole('button', { name: 'Sending…' }).waitFor();
    await page.screenshot({ path: join(SHOTS, 'widget-sending.png') });
    const [{ uuid }] = await pendingReports(page);
    assert.equal((await storedReports(uuid)).length, 0, 'the held request delivered nothing');
    await page.goto(`${origin}/blank`); // pagehide: the widget's last chance
    const beacons = JSON.parse(await page.evaluate(() => localStorage.getItem('test:beacons')));
    assert.deepEqual(beacons, [{ url: `${base}/e/`, ok: true }], 'one beacon to the collector');
    const stored = await waitStored(uuid, 'beacon');
    assert.equal(stored.length, 1);
    assert.equal(JSON.parse(stored[0].properties).$description, 'Beacon report: the page was closed while sending');
    await ctx.close();
  });

  test('redaction: errors and failed fetch/XHR are stored, secrets are not', async () => {
    const ctx = await browser.newContext({ viewport: { width: 800, height: 700 } });
    const page = await ctx.newPage();
    await page.goto(`${origin}/shop?session=sess-SECRET-1&tab=2`);
    await page.getByLabel('Password').fill('hunter2-SECRET-pw');
    await page.evaluate(async () => {
      console.error('Checkout failed: card declined');
      console.warn('Slow response from /api/cart');
      Promise.reject(new Error('unhandled boom'));
      await fetch('/api/fail?token=abc-SECRET-tok&page=2', { headers: { Authorization: 'Bearer bearer-SECRET-1' } });
      await new Promise((resolve) => {
        const x = new XMLHttpRequest();
        x.open('GET', '/api/xhr-fail?api_key=xhr-SECRET-key&page=3');
        x.setRequestHeader('Authorization', 'Bearer bearer-SECRET-2');
        x.onloadend = resolve;
        x.send();
      });
    });
    await fillReport(page, 'Redaction report: checkout fails');
    await page.getByRole('button', { name: 'Send report' }).click();
    const uuid = await page.locator('[data-report-id]').textContent({ timeout: 15_000 });
    const [row, ...more] = await waitStored(uuid, 'redaction');
    assert.equal(more.length, 0);
    const p = JSON.parse(row.properties);
    const msgs = p.$console.map((c) => `${c.level}: ${c.message}`);
    assert.ok(msgs.includes('error: Checkout failed: card declined'), msgs.join('\n'));
    assert.ok(msgs.includes('warn: Slow response from /api/cart'), msgs.join('\n'));
    assert.ok(msgs.some((m) => m.startsWith('error: Unhandled rejection:') && m.includes('unhandled boom')), msgs.join('\n'));
    const net = p.$network.map((n) => [n.method, n.url, n.status]);
    assert.deepEqual(net, [
      ['GET', `${origin}/api/fail?token=[redacted]&page=2`, 500],
      ['GET', `${origin}/api/xhr-fail?api_key=[redacted]&page=3`, 404],
    ]);
    assert.ok(p.$network.every((n) => Object.keys(n).sort().join() === 'at,duration_ms,method,status,url'), 'no headers or bodies');
    assert.equal(p.$current_url, `${origin}/shop?session=[redacted]&tab=2`);
    assert.equal(row.current_url, `${origin}/shop?session=[redacted]&tab=2`);
    const all = JSON.stringify(row);
    assert.doesNotMatch(all, /SECRET|hunter2/, `a secret reached ClickHouse: ${all}`);
    await ctx.close();
  });

  test('screenshot: lazy chunk, preview, stored JPEG with the card number painted over', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1000, height: 760 } });
    const page = await ctx.newPage();
    const csp = [];
    const requests = [];
    page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) csp.push(m.text()); });
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(`${base}/demo`);
    await page.getByLabel('Card number').fill('5555 4444 3333 1111');
    const card = await page.getByLabel('Card number').boundingBox();
    const heading = await page.getByRole('heading', { name: 'Arubug demo shop' }).boundingBox();
    assert.ok(!requests.some((u) => u.endsWith('/screenshot.js')), 'the screenshot code is not loaded up front');
    await fillReport(page, 'Screenshot report: the card field looks odd');
    await page.getByRole('button', { name: 'Add a screenshot' }).click();
    const preview = page.getByRole('img', { name: 'Screenshot of this page' });
    await preview.waitFor({ timeout: 20_000 });
    assert.ok(await preview.evaluate((img) => img.complete && img.naturalWidth === 1000), 'the preview decodes, 1000 px wide');
    assert.ok(requests.includes(scriptUrl.replace(/arubug\.js$/, 'screenshot.js')), `screenshot.js from the widget's own directory: ${requests.join('\n')}`);
    await page.screenshot({ path: join(SHOTS, 'widget-screenshot-preview.png') });
    // Remove, then add again: focus follows the button.
    await page.getByRole('button', { name: 'Remove screenshot' }).click();
    assert.equal(await preview.count(), 0);
    assert.equal(await page.evaluate(() => document.querySelector('[data-arubug]').shadowRoot.activeElement.textContent), 'Add a screenshot');
    await page.getByRole('button', { name: 'Add a screenshot' }).click();
    await preview.waitFor({ timeout: 20_000 });
    await page.getByRole('button', { name: 'Send report' }).click();
    const uuid = await page.locator('[data-report-id]').textContent({ timeout: 15_000 });
    await page.screenshot({ path: join(SHOTS, 'widget-screenshot-receipt.png') });
    assert.deepEqual(csp, [], 'the screenshot broke the page\'s Content-Security-Policy');

    const [row] = await waitStored(uuid, 'screenshot');
    const p = JSON.parse(row.properties);
    assert.equal(p.$screenshot_id, uuid, 'the event points at its screenshot');
    assert.equal(p.$screenshot, undefined, 'the image itself left the event');
    const deadline = Date.now() + 10_000;
    let shots;
    while (!(shots = await rows(`SELECT mime, length(data) AS size, hex(data) AS hex FROM arubug.screenshots WHERE report_id = toUUID('${uuid}')`)).length) {
      assert.ok(Date.now() < deadline, 'no row in the screenshots table');
      await sleep(300);
    }
    assert.equal(shots.length, 1);
    assert.equal(shots[0].mime, 'image/jpeg');
    const jpeg = Buffer.from(shots[0].hex, 'hex');
    assert.equal(jpeg.length, Number(shots[0].size));
    assert.ok(jpeg.length > 5_000 && jpeg.length < 700_000 * 0.75, `plausible size: ${jpeg.length} bytes`);
    assert.deepEqual([...jpeg.subarray(0, 3)], [0xff, 0xd8, 0xff], 'JPEG magic');

    // Decode the stored image in the browser and look at the pixels: the
    // card number's box is one flat grey (no digits), the heading is not.
    const probe = await ctx.newPage();
    const stats = await probe.evaluate(async ({ b64, boxes }) => {
      const img = new Image();
      img.src = 'data:image/jpeg;base64,' + b64;
      await img.decode();
      const c = document.createElement('canvas');
      c.width = img.naturalWidth;
      c.height = img.naturalHeight;
      const g = c.getContext('2d');
      g.drawImage(img, 0, 0);
      const spread = (b) => {
        const d = g.getImageData(Math.round(b.x + 6), Math.round(b.y + 6), Math.round(b.width - 12), Math.round(b.height - 12)).data;
        let min = 255, max = 0;
        for (let i = 0; i < d.length; i += 4) {
          const l = (d[i] + d[i + 1] + d[i + 2]) / 3;
          min = Math.min(min, l);
          max = Math.max(max, l);
        }
        return { min, max };
      };
      return { width: img.naturalWidth, height: img.naturalHeight, card: spread(boxes.card), heading: spread(boxes.heading), png: c.toDataURL('image/png') };
    }, { b64: jpeg.toString('base64'), boxes: { card, heading } });
    writeFileSync(join(SHOTS, 'stored-screenshot.png'), Buffer.from(stats.png.split(',')[1], 'base64')); // what the collector stored
    await probe.close();
    assert.equal(stats.width, 1000);
    assert.equal(stats.height, 760);
    assert.ok(stats.card.max - stats.card.min < 40, `the card field is a flat block: ${JSON.stringify(stats.card)}`);
    assert.ok(stats.heading.max - stats.heading.min > 150, `the heading is drawn: ${JSON.stringify(stats.heading)}`);
    await ctx.close();
  });

  test('posthog-js demo page: the site app loads and the report carries posthog-js\'s ids', async () => {
    const ctx = await browser.newContext({ viewport: { width: 900, height: 760 } });
    const page = await ctx.newPage();
    const csp = [];
    const failed = [];
    page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) csp.push(m.text()); });
    page.on('response', (r) => { if (r.url().startsWith(base) && r.status() >= 400) failed.push(`${r.status()} ${r.url()}`); });
    await page.goto(`${base}/demo`);
    await page.getByRole('link', { name: /posthog-js/ }).click();
    await page.waitForURL(`${base}/demo/posthog`);
    const launcher = page.getByRole('button', { name: 'Report a bug' });
    await launcher.waitFor({ timeout: 20_000 });
    assert.equal(await page.locator('[data-arubug]').count(), 1, 'one widget: the site app');
    assert.equal(await page.evaluate(() => typeof window.arubug), 'undefined', 'not the standalone script');
    await page.click('#broken');
    await fillReport(page, 'posthog-js page: Pay now does nothing');
    await page.getByRole('button', { name: 'Send report' }).click();
    const uuid = await page.locator('[data-report-id]').textContent({ timeout: 15_000 });
    await page.screenshot({ path: join(SHOTS, 'demo-posthog-receipt.png') });
    const ids = await page.evaluate(() => ({ distinct: window.posthog.get_distinct_id(), session: window.posthog.get_session_id() }));
    assert.ok(ids.distinct && ids.session, JSON.stringify(ids));
    assert.deepEqual(csp, [], 'CSP violations on the posthog-js page');
    assert.deepEqual(failed.filter((f) => !f.endsWith('/demo/api/pay')), [], 'requests to the collector failed');

    const [row, ...more] = await waitStored(uuid, 'posthog demo');
    assert.equal(more.length, 0);
    assert.equal(row.distinct_id, ids.distinct, 'posthog-js\'s distinct id');
    assert.equal(row.session_id, ids.session, 'posthog-js\'s session id');
    assert.equal(row.current_url, `${base}/demo/posthog`);
    const p = JSON.parse(row.properties);
    assert.equal(p.$lib, 'arubug-widget');
    assert.ok(p.$console.some((c) => c.message.includes('payment.intent is undefined')), JSON.stringify(p.$console));
    await ctx.close();
  });
});
