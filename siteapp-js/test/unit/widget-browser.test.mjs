// Smoke test of the standalone bundle in real headless Chromium: a tiny node
// server serves the page and plays the collector (records POST /e/ bodies).
// Skips when /usr/bin/chromium (or CHROMIUM_PATH) is missing.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const require = createRequire(import.meta.url);
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SHOT = process.env.WIDGET_SCREENSHOT || new URL('../../build/screenshots/widget-receipt.png', import.meta.url).pathname;
const root = fileURLToPath(new URL('../../', import.meta.url));

let server, browser, base;
const posts = [];
let failFirst = true;

before(async () => {
  if (!existsSync(CHROMIUM)) return;
  const js = (await esbuild.build({ entryPoints: [root + 'src/standalone.ts'], bundle: true, format: 'iife', write: false, target: 'es2020' })).outputFiles[0].text;
  server = createServer((req, res) => {
    const cors = { 'Access-Control-Allow-Origin': '*' };
    if (req.url.startsWith('/arubug.js')) return res.writeHead(200, { 'Content-Type': 'text/javascript' }).end(js);
    if (req.url === '/api/v1/product-areas')
      return res.writeHead(200, { ...cors, 'Content-Type': 'application/json' }).end(JSON.stringify({ product_areas: [{ id: 'billing', label: 'Billing' }, { id: 'search', label: 'Search' }, { id: 'not-sure', label: 'Not sure' }] }));
    if (req.url === '/e/' && req.method === 'POST') {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        posts.push({ body: JSON.parse(body), type: req.headers['content-type'] });
        if (failFirst) {
          failFirst = false;
          return res.writeHead(503, { ...cors, 'Retry-After': '0' }).end('{"status":0}');
        }
        res.writeHead(200, { ...cors, 'Content-Type': 'application/json' }).end('{"status":1}');
      });
      return;
    }
    if (req.url.startsWith('/broken')) return res.writeHead(500).end('no');
    // Strict CSP: no inline script or style; the widget uses adoptedStyleSheets.
    res.writeHead(200, { 'Content-Type': 'text/html', 'Content-Security-Policy': "default-src 'self'; script-src 'self'; style-src 'self'" });
    res.end(`<!doctype html><html lang="en"><head><meta name="viewport" content="width=device-width"><title>t</title></head>
<body><h1>Shop</h1><button id="page-btn">Page button</button>
<script src="/arubug.js" data-token="phc_test" data-host="${base}" data-locale="${req.url.includes('de') ? 'de' : 'en'}"></script>
<script src="/arubug.js?noop" data-x="1"></script></body></html>`);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${server.address().port}`;
  const { chromium } = require('playwright-core');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (server) await new Promise((r) => server.close(r));
});

test('report via keyboard at 320 px; retry keeps the uuid; receipt shows it', { skip: !existsSync(CHROMIUM) && 'no Chromium' }, async () => {
  const page = await browser.newPage({ viewport: { width: 320, height: 640 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(base + '/?token=s3cret&tab=1');
  await page.waitForSelector('[data-arubug] >> button.launcher');
  await page.evaluate(async () => {
    console.error('checkout failed', { code: 42 });
    await fetch('/broken?api_key=zzz').catch(() => {});
  });
  await page.keyboard.press('Alt+Shift+KeyB');
  await page.waitForSelector('[role=dialog]');
  assert.equal(await page.evaluate(() => document.querySelector('[data-arubug]').shadowRoot.activeElement.id), 'ab-desc');
  // Esc closes and focus returns to what had it (the body → the launcher).
  await page.keyboard.press('Escape');
  assert.equal(await page.locator('[role=dialog]').count(), 0);
  await page.locator('[data-arubug] >> button.launcher').focus();
  await page.keyboard.press('Enter');
  await page.waitForSelector('[role=dialog][aria-modal=true]');
  await page.waitForSelector('#ab-area option[value=billing]', { state: 'attached' });
  await page.keyboard.type('The pay button does nothing');
  await page.keyboard.press('Tab'); // product area
  await page.keyboard.press('ArrowUp'); // Not sure (default, last) -> Search
  await page.keyboard.press('Tab'); // severity
  await page.keyboard.press('ArrowDown'); // medium -> high
  await page.keyboard.press('Tab'); // email
  await page.keyboard.type('ann@example.com');
  await page.screenshot({ path: SHOT.replace(/\.png$/, '-form.png') });
  await page.keyboard.press('Enter');
  const id = await page.locator('[data-report-id]').textContent({ timeout: 10_000 });
  await page.screenshot({ path: SHOT });
  assert.equal(posts.length, 2, 'a 503 then a retry');
  assert.equal(posts[0].body.uuid, posts[1].body.uuid);
  const ev = posts[1].body;
  assert.equal(ev.uuid, id);
  assert.equal(posts[1].type, 'text/plain');
  assert.equal(ev.event, '$bug_report');
  assert.equal(ev.api_key, 'phc_test');
  const p = ev.properties;
  assert.equal(p.$description, 'The pay button does nothing');
  assert.equal(p.$product_area, 'search');
  assert.equal(p.$severity, 'high');
  assert.equal(p.$email, 'ann@example.com');
  assert.equal(p.$hp, '');
  assert.ok(p.$time_to_submit_ms > 0);
  assert.equal(p.$current_url, base + '/?token=[redacted]&tab=1');
  assert.equal(p.$viewport_width, 320);
  assert.ok(p.$console.some((c) => c.level === 'error' && c.message.startsWith('checkout failed')));
  assert.deepEqual(p.$network.map((n) => [n.method, n.url, n.status]), [['GET', base + '/broken?api_key=[redacted]', 500]]);
  assert.ok(!p.$network.some((n) => n.url.includes('/e/')), 'the collector itself is not recorded');
  assert.equal(await page.evaluate(() => localStorage.getItem('arubug:pending')), null, 'queue emptied');
  assert.deepEqual(errors, []);
  // Close returns focus to the launcher.
  await page.keyboard.press('Escape');
  assert.equal(await page.evaluate(() => document.querySelector('[data-arubug]').shadowRoot.activeElement?.className), 'launcher bottom-right');
  await page.close();
});

test('German locale and the honeypot is out of the tab order', { skip: !existsSync(CHROMIUM) && 'no Chromium' }, async () => {
  const page = await browser.newPage({ viewport: { width: 800, height: 600 } });
  await page.goto(base + '/de');
  const btn = page.locator('[data-arubug] >> button.launcher');
  assert.equal(await btn.textContent(), 'Fehler melden');
  await page.evaluate(() => window.arubug.open());
  await page.waitForSelector('[role=dialog]');
  assert.equal(await page.locator('#ab-hp').getAttribute('tabindex'), '-1');
  // Submitting empty shows the German "required" message.
  await page.locator('button.primary').click();
  assert.equal(await page.locator('#ab-desc-err').textContent(), 'Bitte füllen Sie dieses Feld aus.');
  await page.close();
});
