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
  // The screenshot chunk plus the library's SVG step, to look at what would be drawn.
  const shotJs = (await esbuild.build({
    stdin: { contents: "export { domToForeignObjectSvg } from 'modern-screenshot'; export * from './src/screenshot.ts';", resolveDir: root, loader: 'ts' },
    bundle: true, format: 'esm', write: false, target: 'es2020', logLevel: 'error',
  })).outputFiles[0].text;
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
    if (req.url === '/shot-test.js') return res.writeHead(200, { 'Content-Type': 'text/javascript' }).end(shotJs);
    if (req.url === '/fixture') {
      res.writeHead(200, { 'Content-Type': 'text/html', 'Content-Security-Policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:" });
      return res.end(`<!doctype html><html lang="en"><head><title>fixture</title></head><body>
<h1>Fixture heading</h1>
<label>Text <input id="t" value="attr-SECRET-1"></label>
<label>Password <input id="pw" type="password"></label>
<label>Note <textarea id="ta">default-SECRET-2</textarea></label>
<label>Plan <select id="sel"><option>Public option</option><option value="s">SECRET option</option></select></label>
<label>Agree <input type="checkbox" id="cb"></label>
<div data-arubug-mask>Balance SECRET 1 234 <span>nested SECRET</span></div>
<p>Visible paragraph</p>
<div data-arubug><span>widget SECRET text</span></div>
</body></html>`);
    }
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

test('screenshot masking: every form value and data-arubug-mask is blanked in the clone, the live page is untouched', { skip: !existsSync(CHROMIUM) && 'no Chromium' }, async () => {
  const page = await browser.newPage({ viewport: { width: 800, height: 600 } });
  const csp = [];
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) csp.push(m.text()); });
  await page.goto(base + '/fixture');
  await page.fill('#t', 'typed-SECRET-3');
  await page.fill('#pw', 'pw-SECRET-4');
  await page.fill('#ta', 'typed-SECRET-5');
  await page.selectOption('#sel', 's');
  await page.check('#cb');
  const r = await page.evaluate(async () => {
    const m = await import('/shot-test.js');
    const svg = await m.domToForeignObjectSvg(document.documentElement, m.shotOptions(window));
    // Control: without the mask the typed value is in the clone.
    const bare = await m.domToForeignObjectSvg(document.documentElement, { ...m.shotOptions(window), onCloneEachNode: null });
    const input = document.createElement('input');
    input.setAttribute('value', 'x');
    return {
      xml: new XMLSerializer().serializeToString(svg),
      bare: new XMLSerializer().serializeToString(bare),
      masked: svg.querySelectorAll('[data-arubug-masked]').length,
      unit: [m.maskNode(input), input.hasAttribute('value'), m.maskNode(document.createElement('p')), m.maskNode(document.createTextNode('t'))],
      live: [document.getElementById('t').value, document.querySelectorAll('[data-arubug-masked]').length],
    };
  });
  assert.match(r.bare, /typed-SECRET-3/, 'control: unmasked, the typed value would be drawn');
  assert.doesNotMatch(r.xml, /SECRET/, 'a masked value reached the rendered SVG');
  assert.match(r.xml, /Fixture heading/);
  assert.match(r.xml, /Visible paragraph/);
  assert.equal(r.masked, 6, 'text, password, textarea, select, checkbox, data-arubug-mask');
  assert.deepEqual(r.unit, [true, false, false, false]);
  assert.deepEqual(r.live, ['typed-SECRET-3', 0], 'the live page is not changed');
  assert.deepEqual(csp, []);
  await page.close();
});

test('screenshot size: JPEG, scaled to maxWidth, recompressed under the cap', { skip: !existsSync(CHROMIUM) && 'no Chromium' }, async () => {
  const page = await browser.newPage({ viewport: { width: 800, height: 600 } });
  await page.goto(base + '/fixture');
  const r = await page.evaluate(async () => {
    const m = await import('/shot-test.js');
    const url = await m.capture(window, { maxWidth: 500 });
    const img = new Image();
    img.src = url;
    await img.decode();
    // Noise compresses badly: the cap forces lower quality, then a smaller image.
    const c = document.createElement('canvas');
    c.width = 1200;
    c.height = 900;
    const g = c.getContext('2d');
    const d = g.createImageData(c.width, c.height);
    for (let i = 0; i < d.data.length; i++) d.data[i] = (i * 2654435761) % 251;
    g.putImageData(d, 0, 0);
    const small = m.encode(c, 60_000);
    const img2 = new Image();
    img2.src = small;
    await img2.decode();
    return { head: url.slice(0, 23), w: img.naturalWidth, h: img.naturalHeight, max: m.MAX_WIDTH, cap: m.MAX_CHARS, len: url.length, small: small.length, w2: img2.naturalWidth };
  });
  assert.equal(r.head, 'data:image/jpeg;base64,');
  assert.deepEqual([r.w, r.h], [500, 375]);
  assert.equal(r.max, 1280);
  assert.equal(r.cap, 700_000);
  assert.ok(r.len < r.cap);
  assert.ok(r.small <= 60_000 && r.w2 < 1200, JSON.stringify(r));
  await page.close();
});
