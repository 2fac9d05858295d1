// End-to-end test: the real, unmodified posthog-js from npm, running in real
// headless Chromium, pointed at an Arubug collector with `api_host`. Every
// case checks the rows that landed in ClickHouse, not just what the browser
// saw.
//
// Run: cd siteapp-js && npm ci && ARUBUG_BIN=/path/to/arubug node --test test/
//
// Environment:
//   ARUBUG_BIN         the arubug binary to test (required)
//   CHROMIUM_PATH      Chromium to drive (default /usr/bin/chromium)
//   CLICKHOUSE_CLIENT  clickhouse-client to query with (default from PATH)
//   E2E_SCREENSHOT     where to save a screenshot of the test page
//                      (default /tmp/posthogjs-e2e.png)
//   E2E_VERBOSE=1      print every request, answer and console line of each
//                      case even when it passes

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { existsSync, readFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { setTimeout as sleep } from 'node:timers/promises';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const TOKEN = 'phc_e2e';
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CLICKHOUSE_CLIENT = process.env.CLICKHOUSE_CLIENT || 'clickhouse-client';
const SCREENSHOT = process.env.E2E_SCREENSHOT || new URL('../build/screenshots/posthog-js-page.png', import.meta.url).pathname;
const POSTHOG_DIR = dirname(require.resolve('posthog-js/package.json'));
const POSTHOG_VERSION = JSON.parse(readFileSync(join(POSTHOG_DIR, 'package.json'), 'utf8')).version;
// array.full.js is posthog-js's standalone browser build with every extension
// bundled in: it sets window.posthog and lazy-loads no extension script.
const POSTHOG_BUNDLE = join(POSTHOG_DIR, 'dist', 'array.full.js');
// dist/module.js is the ES module that `import posthog from 'posthog-js'`
// bundles into most apps: it lazy-loads extensions (surveys, …) from
// `${api_host}/static/` at run time instead of carrying them.
const POSTHOG_MODULE = join(POSTHOG_DIR, 'dist', 'module.js');

const SERVE_TIMEOUT_MS = 60_000;
const ROWS_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 15_000;

// ---------------------------------------------------------------- helpers

function marker(name) {
  return `e2e-${name}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

async function freePort() {
  const srv = createNetServer();
  await new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

function truncate(s, n = 600) {
  if (s == null) return s;
  s = String(s);
  return s.length > n ? `${s.slice(0, n)}… (${s.length} chars)` : s;
}

// decodeBody turns a captured request body into readable text the way the
// collector would: gzip by magic bytes, form data= (base64), else text.
function decodeBody(buf, url) {
  if (!buf || buf.length === 0) return { encoding: 'empty', text: '' };
  if (buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      return { encoding: 'gzip', text: gunzipSync(buf).toString('utf8') };
    } catch (e) {
      return { encoding: 'gzip (corrupt)', text: `<${e.message}>` };
    }
  }
  const text = buf.toString('utf8');
  if (text.startsWith('data=')) {
    const data = new URLSearchParams(text).get('data') || '';
    const compression = new URL(url).searchParams.get('compression');
    if (compression === 'base64' || /^[A-Za-z0-9+/=]+$/.test(data)) {
      try {
        return { encoding: `form data= (${compression || 'base64'})`, text: Buffer.from(data, 'base64').toString('utf8') };
      } catch {
        /* fall through */
      }
    }
    return { encoding: `form data= (${compression})`, text: data };
  }
  return { encoding: 'plain', text };
}

function sqlString(s) {
  return `'${String(s).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

async function clickhouse(port, sql) {
  return new Promise((resolve, reject) => {
    execFile(
      CLICKHOUSE_CLIENT,
      ['--host', '127.0.0.1', '--port', String(port), '-q', sql],
      { timeout: 15_000, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`clickhouse-client failed: ${err.message}\n${stderr}`));
          return;
        }
        resolve(stdout);
      },
    );
  });
}

const EVENT_COLUMNS = `toString(uuid) AS uuid, project, event, distinct_id,
  toUnixTimestamp(timestamp) AS ts_unix, timestamp_ms, toUnixTimestamp(created_at) AS created_unix,
  properties, person_set, person_set_once, session_id, window_id, device_id,
  current_url, pathname, host, lib, lib_version, ip`;

async function queryEvents(chPort, where) {
  const out = await clickhouse(
    chPort,
    `SELECT ${EVENT_COLUMNS} FROM arubug.events WHERE ${where} ORDER BY timestamp, timestamp_ms FORMAT JSONEachRow`,
  );
  const rows = out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const r = JSON.parse(l);
      r.props = JSON.parse(r.properties);
      return r;
    });
  // The table is a ReplacingMergeTree keyed by uuid: a retried request may
  // show twice until a merge. Keep one row per uuid, count the rest.
  const seen = new Map();
  for (const r of rows) seen.set(r.uuid, r);
  const unique = [...seen.values()];
  unique.duplicates = rows.length - unique.length;
  return unique;
}

// waitForEvents polls ClickHouse until ready(rows) holds or the time is up.
async function waitForEvents(chPort, where, ready, what) {
  const deadline = Date.now() + ROWS_TIMEOUT_MS;
  let rows = [];
  for (;;) {
    rows = await queryEvents(chPort, where);
    if (ready(rows)) return rows;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${ROWS_TIMEOUT_MS} ms waiting for ${what} in ClickHouse (WHERE ${where}); ` +
          `rows so far: ${JSON.stringify(rows.map((r) => ({ event: r.event, distinct_id: r.distinct_id })))}`,
      );
    }
    await sleep(500);
  }
}

function hasEvents(...names) {
  return (rows) => names.every((n) => rows.some((r) => r.event === n));
}

// ------------------------------------------------------ arubug lifecycle

async function startArubug(bin) {
  let lastErr;
  // A free port can be taken between probing and binding; retry then.
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort();
    const dataDir = mkdtempSync(join(tmpdir(), 'arubug-e2e-'));
    try {
      return await startArubugOnce(bin, port, dataDir);
    } catch (e) {
      lastErr = e;
      rmSync(dataDir, { recursive: true, force: true });
      if (!/address already in use/i.test(e.message)) break;
    }
  }
  throw lastErr;
}

function startArubugOnce(bin, port, dataDir) {
  const env = {
    ...process.env,
    ARUBUG_ADDR: `127.0.0.1:${port}`,
    ARUBUG_DATA_DIR: dataDir,
    ARUBUG_PROJECT_TOKENS: TOKEN,
    // The shipped routing rules, wherever the test is run from.
    ARUBUG_RULES_FILE: new URL('../../routing-rules/rules.yaml', import.meta.url).pathname,
    ARUBUG_LOG_FORMAT: 'json',
  };
  // The managed ClickHouse is what this test queries.
  delete env.ARUBUG_CLICKHOUSE_DSN;
  const proc = spawn(bin, ['serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const srv = {
    proc,
    port,
    dataDir,
    origin: `http://127.0.0.1:${port}`,
    chPort: null,
    logs: [],
    exited: null,
  };
  const exited = new Promise((resolve) => {
    proc.once('exit', (code, signal) => {
      srv.exited = { code, signal };
      resolve(srv.exited);
    });
  });
  srv.exitedPromise = exited;
  // Safety net if the test process dies without running the after hook:
  // SIGTERM lets arubug stop its managed ClickHouse too.
  const onExit = () => {
    if (!srv.exited) proc.kill('SIGTERM');
  };
  process.once('exit', onExit);
  exited.then(() => process.removeListener('exit', onExit));

  return new Promise((resolve, reject) => {
    let buf = '';
    let done = false;
    const finish = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) {
        err.message += `\n--- arubug log ---\n${srv.logs.slice(-40).join('\n')}`;
        if (!srv.exited) proc.kill('SIGKILL');
        reject(err);
      } else {
        resolve(srv);
      }
    };
    const onLine = (line) => {
      srv.logs.push(line);
      if (srv.logs.length > 2000) srv.logs.shift();
      let rec;
      try {
        rec = JSON.parse(line);
      } catch {
        return;
      }
      if (rec.msg === 'managed clickhouse-server ready' && rec.tcp) {
        srv.chPort = Number(rec.tcp.split(':').pop());
      }
      if (rec.msg === 'arubug is serving') {
        if (!srv.chPort) finish(new Error('arubug is serving but never logged "managed clickhouse-server ready" with a tcp address'));
        else finish();
      }
    };
    const onData = (chunk) => {
      buf += chunk.toString('utf8');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    };
    proc.stderr.on('data', onData);
    proc.stdout.on('data', onData);
    proc.once('error', (e) => finish(new Error(`cannot start ${bin}: ${e.message}`)));
    exited.then(({ code, signal }) =>
      finish(new Error(`arubug exited (code ${code}, signal ${signal}) before it was serving`)),
    );
    const timer = setTimeout(
      () => finish(new Error(`arubug did not log "arubug is serving" within ${SERVE_TIMEOUT_MS / 1000} s`)),
      SERVE_TIMEOUT_MS,
    );
  });
}

async function stopArubug(srv) {
  if (!srv.exited) {
    srv.proc.kill('SIGTERM');
    const res = await Promise.race([srv.exitedPromise, sleep(STOP_TIMEOUT_MS).then(() => null)]);
    if (!res) {
      srv.proc.kill('SIGKILL');
      await srv.exitedPromise;
      srv.killed = true;
    }
  }
  return srv.exited;
}

// ------------------------------------------------------------ page server

// testPage is the page the browser opens. loader "classic" loads the
// standalone bundle with a script tag; "module" imports the npm ES module.
function testPage(loader) {
  const load =
    loader === 'module'
      ? `<script type="module">
  import posthog from '/posthog-module.js';
  window.posthog = posthog;
  document.getElementById('version').textContent = posthog.version + ' (dist/module.js, ES module)';
</script>`
      : '<script src="/posthog.js"></script>';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Arubug × posthog-js end-to-end</title>
<link rel="icon" href="data:,">
<style>
  body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #1d1f24; background: #f7f7f4; }
  h1 { font-size: 20px; margin: 0 0 4px; }
  .sub { color: #666; margin-bottom: 16px; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; background: #fff; padding: 12px 16px; border: 1px solid #ddd; border-radius: 6px; }
  dt { font-weight: 600; } dd { margin: 0; font-family: ui-monospace, monospace; word-break: break-all; }
  h2 { font-size: 15px; margin: 18px 0 6px; }
  ol { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 8px 8px 8px 36px; font-family: ui-monospace, monospace; font-size: 12px; }
  .ok { color: #11772d; font-weight: 600; } .bad { color: #b3261e; font-weight: 600; }
</style>
${load}
</head>
<body>
<h1>Arubug × posthog-js end-to-end</h1>
<div class="sub">The unmodified posthog-js browser bundle from npm, sending to an Arubug collector on another origin.</div>
<dl>
  <dt>case</dt><dd id="case"></dd>
  <dt>posthog-js</dt><dd id="version"></dd>
  <dt>page origin</dt><dd id="origin"></dd>
  <dt>api_host</dt><dd id="api-host"></dd>
  <dt>distinct_id</dt><dd id="distinct-id"></dd>
  <dt>session_id</dt><dd id="session-id"></dd>
</dl>
<p><button id="buy" class="cta">Buy now</button></p>
<h2>Events captured by posthog-js</h2>
<ol id="captured"></ol>
<h2>Rows verified in ClickHouse (arubug.events)</h2>
<ol id="verified"></ol>
<script>
  const q = new URLSearchParams(location.search);
  document.getElementById('case').textContent = q.get('case') || '';
  document.getElementById('origin').textContent = location.origin;
  if (window.posthog) document.getElementById('version').textContent = window.posthog.version + ' (dist/array.full.js)';
  // Called by the test: initialise posthog-js and resolve once it is loaded.
  window.e2eInit = (apiHost, options) => new Promise((resolve, reject) => {
    document.getElementById('api-host').textContent = apiHost;
    // opt_out_useragent_filter: headless Chromium says "HeadlessChrome" in
    // its user agent, and posthog-js drops events from bots unless told not
    // to (its own console message recommends this for end-to-end tests).
    posthog.init(${JSON.stringify(TOKEN)}, Object.assign({ api_host: apiHost, debug: true, opt_out_useragent_filter: true }, options || {}, {
      loaded: (ph) => {
        ph.on('eventCaptured', (ev) => {
          const li = document.createElement('li');
          li.textContent = ev.event + '  ' + JSON.stringify(ev.properties.marker || ev.properties.$current_url || '');
          document.getElementById('captured').appendChild(li);
        });
        document.getElementById('distinct-id').textContent = ph.get_distinct_id();
        document.getElementById('session-id').textContent = ph.get_session_id();
        resolve({ distinctId: ph.get_distinct_id(), sessionId: ph.get_session_id(), version: ph.version });
      },
    }));
    setTimeout(() => reject(new Error('posthog.init did not call loaded within 10 s')), 10000);
  });
  window.e2eVerified = (lines) => {
    const ol = document.getElementById('verified');
    for (const l of lines) {
      const li = document.createElement('li');
      li.innerHTML = '<span class="ok">✓</span> ';
      li.appendChild(document.createTextNode(l));
      ol.appendChild(li);
    }
  };
</script>
</body>
</html>
`;
}

async function startPageServer() {
  const html = testPage('classic');
  const moduleHTML = testPage('module');
  const bundle = readFileSync(POSTHOG_BUNDLE);
  const moduleBundle = readFileSync(POSTHOG_MODULE);
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    switch (url.pathname) {
      case '/':
      case '/index.html':
      case '/other.html':
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
        res.end(url.pathname === '/other.html' ? '<!doctype html><title>elsewhere</title><link rel="icon" href="data:,"><p>navigated away</p>' : html);
        return;
      case '/module.html':
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
        res.end(moduleHTML);
        return;
      case '/posthog-module.js':
        res.writeHead(200, { 'Content-Type': 'application/javascript; charset=utf-8', 'Cache-Control': 'no-store' });
        res.end(moduleBundle);
        return;
      case '/posthog.js':
        res.writeHead(200, { 'Content-Type': 'application/javascript; charset=utf-8', 'Cache-Control': 'no-store' });
        res.end(bundle);
        return;
      case '/favicon.ico':
        res.writeHead(204);
        res.end();
        return;
      default:
        res.writeHead(404, { 'Content-Type': 'text/plain' });
        res.end('not found');
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return { server, port, origin: `http://127.0.0.1:${port}` };
}

// ------------------------------------------------------------ browser page

// Everything the browser did against the collector, across all cases.
const allRequests = [];

class Session {
  constructor(ctx, page, name, env) {
    this.ctx = ctx;
    this.page = page;
    this.name = name;
    this.env = env;
    this.requests = []; // requests to the collector
    this.external = []; // requests to anything but the collector and page server
    this.console = [];
    this.pageErrors = [];
  }

  static async open(browser, env, name, query = {}, pagePath = '/index.html') {
    const ctx = await browser.newContext({ viewport: { width: 1100, height: 760 } });
    const page = await ctx.newPage();
    const s = new Session(ctx, page, name, env);
    const byReq = new Map();
    ctx.on('request', (req) => {
      const url = req.url();
      if (url.startsWith(env.arubug.origin + '/')) {
        const buf = req.postDataBuffer();
        const rec = {
          case: name,
          method: req.method(),
          url,
          path: new URL(url).pathname,
          query: new URL(url).search,
          resourceType: req.resourceType(),
          contentType: req.headers()['content-type'] || '',
          origin: req.headers()['origin'] ?? null,
          body: buf,
          status: null,
          responseHeaders: null,
          responseBody: null,
          failure: null,
        };
        byReq.set(req, rec);
        s.requests.push(rec);
        allRequests.push(rec);
      } else if (!url.startsWith(env.page.origin + '/') && !url.startsWith('data:') && !url.startsWith('about:')) {
        s.external.push(`${req.method()} ${url}`);
      }
    });
    ctx.on('response', async (res) => {
      const rec = byReq.get(res.request());
      if (!rec) return;
      const headers = res.headers();
      let body = null;
      let origin = null;
      try {
        // The request's provisional headers lack Origin; the full set has it.
        origin = (await res.request().allHeaders()).origin ?? null;
      } catch {
        /* gone with the page */
      }
      try {
        body = (await res.body()).toString('utf8');
      } catch {
        /* beacons and navigations away have no readable body */
      }
      // status last: waitForRequest treats it as "answer recorded".
      Object.assign(rec, { responseHeaders: headers, responseBody: body, origin, status: res.status() });
    });
    ctx.on('requestfailed', (req) => {
      const rec = byReq.get(req);
      if (rec) rec.failure = req.failure()?.errorText || 'failed';
    });
    page.on('console', (msg) => s.console.push({ type: msg.type(), text: msg.text() }));
    page.on('pageerror', (err) => s.pageErrors.push(String(err && err.stack ? err.stack : err)));

    const qs = new URLSearchParams({ case: name, ...query }).toString();
    s.url = `${env.page.origin}${pagePath}?${qs}`;
    await page.goto(s.url, { waitUntil: 'load' });
    const version = await page.evaluate(() => (window.posthog ? window.posthog.version : null));
    assert.equal(version, POSTHOG_VERSION, 'the posthog-js bundle did not load in the page');
    return s;
  }

  async init(options = {}) {
    const res = await this.page.evaluate(
      ([apiHost, opts]) => window.e2eInit(apiHost, opts),
      [this.env.arubug.origin, options],
    );
    this.distinctId = res.distinctId;
    this.sessionId = res.sessionId;
    return res;
  }

  // waitForRequest waits until a collector request matching pred has its
  // response (or failure) recorded.
  async waitForRequest(pred, what, timeout = 10_000) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const r = this.requests.find((x) => pred(x) && (x.status !== null || x.failure));
      if (r) return r;
      if (Date.now() > deadline) throw new Error(`no ${what} request was answered within ${timeout} ms`);
      await sleep(100);
    }
  }

  async waitForRemoteConfig() {
    const r = await this.waitForRequest(
      (x) => x.path === `/array/${TOKEN}/config.js` || x.path === `/array/${TOKEN}/config`,
      'remote config',
    );
    // posthog-js applies the config a tick after the script loads.
    await this.page.waitForFunction(() => window._POSTHOG_REMOTE_CONFIG && window._POSTHOG_REMOTE_CONFIG[Object.keys(window._POSTHOG_REMOTE_CONFIG)[0]]);
    return r;
  }

  captureRequests() {
    return this.requests.filter((r) => /^\/(e|i\/v0\/e|capture|batch|track|engage)\/?$/.test(r.path));
  }

  // Capture requests whose decoded body has an event with properties.marker
  // = m (the page URL holds the marker too, so a plain substring would also
  // match every event's $current_url).
  requestsCarrying(m) {
    const needle = `"marker":${JSON.stringify(m)}`;
    return this.captureRequests().filter((r) => decodeBody(r.body, r.url).text.includes(needle));
  }

  // Every event posthog-js sent to a capture endpoint, decoded.
  sentEvents() {
    const out = [];
    for (const r of this.captureRequests()) {
      let payload;
      try {
        payload = JSON.parse(decodeBody(r.body, r.url).text);
      } catch {
        continue;
      }
      const events = Array.isArray(payload) ? payload : Array.isArray(payload.batch) ? payload.batch : [payload];
      for (const ev of events) out.push({ ...ev, _request: r });
    }
    return out;
  }

  problems() {
    const out = [];
    for (const r of this.requests) {
      if (r.failure) out.push(`request failed: ${r.method} ${r.url}: ${r.failure}`);
      else if (r.status !== null && (r.status < 200 || r.status > 299)) out.push(`HTTP ${r.status}: ${r.method} ${r.url}`);
    }
    for (const m of this.console) {
      if (m.type === 'error') out.push(`console error: ${truncate(m.text, 400)}`);
      else if (m.type === 'warning' && /posthog/i.test(m.text) && /(fail|error|reject|status|blocked|cors|denied|invalid)/i.test(m.text)) {
        out.push(`console warning: ${truncate(m.text, 400)}`);
      }
    }
    for (const e of this.pageErrors) out.push(`page error: ${truncate(e, 400)}`);
    for (const e of this.external) out.push(`unexpected request off the collector and page origins: ${e}`);
    return out;
  }

  assertClean() {
    const p = this.problems();
    assert.deepEqual(p, [], `posthog-js hit problems talking to Arubug:\n  ${p.join('\n  ')}`);
  }

  diagnostics() {
    const lines = [`--- case ${this.name}: page ${this.url}`, '--- requests to the collector:'];
    for (const r of this.requests) lines.push('  ' + describeRequest(r).split('\n').join('\n  '));
    lines.push('--- console:');
    for (const m of this.console) lines.push(`  [${m.type}] ${truncate(m.text, 500)}`);
    for (const e of this.pageErrors) lines.push(`  [pageerror] ${truncate(e, 500)}`);
    for (const e of this.external) lines.push(`  [external] ${e}`);
    return lines.join('\n');
  }

  async verified(lines) {
    try {
      await this.page.evaluate((l) => window.e2eVerified && window.e2eVerified(l), lines);
    } catch {
      /* the page may have navigated away */
    }
  }

  async close() {
    await this.ctx.close().catch(() => {});
  }
}

function describeRequest(r) {
  const body = decodeBody(r.body, r.url);
  return [
    `${r.method} ${r.path}${r.query} [${r.resourceType}] content-type=${JSON.stringify(r.contentType)} origin=${r.origin} -> ` +
      (r.failure ? `FAILED ${r.failure}` : `${r.status}`) +
      (r.responseBody ? ` ${truncate(r.responseBody, 300)}` : ''),
    body.text ? `  body (${body.encoding}, ${r.body ? r.body.length : 0} bytes raw): ${truncate(body.text, 400)}` : '',
    r.responseHeaders && r.responseHeaders['access-control-allow-origin'] !== undefined
      ? `  access-control-allow-origin: ${r.responseHeaders['access-control-allow-origin']}`
      : '',
  ]
    .filter(Boolean)
    .join('\n');
}

// runCase opens a fresh browser context (fresh cookies and storage, so a fresh
// posthog-js identity), runs fn, and on failure adds what the browser saw.
async function runCase(env, name, query, fn, pagePath) {
  if (env.setupError) throw new Error(`setup failed: ${env.setupError.message}`);
  const s = await Session.open(env.browser, env, name, query, pagePath);
  try {
    await fn(s);
    if (process.env.E2E_VERBOSE) console.log(s.diagnostics());
  } catch (e) {
    e.message += `\n${s.diagnostics()}\n--- arubug log (tail) ---\n${env.arubug.logs.slice(-15).join('\n')}`;
    throw e;
  } finally {
    await s.close();
  }
}

function partialDeepEqual(actual, expected, what) {
  for (const [k, v] of Object.entries(expected)) {
    assert.deepEqual(actual[k], v, `${what}.${k} (whole value: ${truncate(JSON.stringify(actual), 400)})`);
  }
}

function near(unixSeconds, what) {
  const now = Date.now() / 1000;
  assert.ok(Math.abs(now - unixSeconds) < 300, `${what} ${new Date(unixSeconds * 1000).toISOString()} is not within 5 min of now`);
}

// --------------------------------------------------------------- the tests

// setup checks the prerequisites and starts the collector, the page server
// and Chromium.
async function setup(env) {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM}. Install Debian's Chromium with: apt-get install -y chromium ` +
        `(or set CHROMIUM_PATH to a Chromium binary). This test never downloads a browser.`,
    );
  }
  const bin = process.env.ARUBUG_BIN;
  if (!bin) {
    throw new Error(
      'ARUBUG_BIN is not set. Build the collector and point at it: ' +
        'go build -o /tmp/arubug-e2e ./cmd/arubug && ARUBUG_BIN=/tmp/arubug-e2e node --test',
    );
  }
  if (!existsSync(bin) || !statSync(bin).isFile()) {
    throw new Error(`ARUBUG_BIN=${bin} does not exist or is not a file`);
  }
  assert.ok(existsSync(POSTHOG_BUNDLE), `posthog-js browser bundle missing at ${POSTHOG_BUNDLE}: run npm ci`);

  env.arubug = await startArubug(bin);
  env.page = await startPageServer();
  assert.notEqual(env.page.port, env.arubug.port, 'page and collector must be on different origins');
  env.browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

describe('posthog-js (npm, unmodified) in headless Chromium against Arubug', { timeout: 300_000 }, () => {
  const env = { arubug: null, page: null, browser: null };

  // A failed setup is recorded, not thrown: node's runner would mark every
  // case "cancelled"; rethrown by each case, it counts as a failure instead.
  before(async () => {
    try {
      await setup(env);
    } catch (e) {
      env.setupError = e;
    }
  });

  after(async () => {
    const errors = [];
    if (env.browser) await env.browser.close().catch((e) => errors.push(`closing Chromium: ${e.message}`));
    if (env.page) {
      env.page.server.closeAllConnections?.();
      await new Promise((resolve) => env.page.server.close(resolve));
    }
    if (env.arubug) {
      const res = await stopArubug(env.arubug);
      rmSync(env.arubug.dataDir, { recursive: true, force: true });
      if (env.arubug.killed) errors.push(`arubug did not stop within ${STOP_TIMEOUT_MS / 1000} s of SIGTERM and was killed`);
      else if (res && res.code !== 0) {
        errors.push(`arubug exited with code ${res.code} signal ${res.signal} on SIGTERM:\n${env.arubug.logs.slice(-15).join('\n')}`);
      }
    }
    if (errors.length) throw new Error(errors.join('\n'));
  });

  test('1. default init: $pageview and a custom event, transport and compression chosen by posthog-js', async () => {
    const m = marker('default');
    await runCase(env, 'default', { marker: m }, async (s) => {
      const { distinctId, sessionId, version } = await s.init();
      assert.equal(version, POSTHOG_VERSION);
      assert.ok(distinctId, 'posthog-js generated no distinct_id');
      const cfg = await s.waitForRemoteConfig();
      assert.ok(cfg.status >= 200 && cfg.status < 300, `remote config answered ${cfg.status}`);

      // Batched (request_batching is on by default): no send_instantly here.
      await s.page.evaluate((mk) => window.posthog.capture('e2e_custom', { marker: mk, nested: { n: 1, ok: true } }), m);
      // Autocapture is on by default (the remote config does not opt out).
      await s.page.click('#buy');

      const rows = await waitForEvents(
        env.arubug.chPort,
        `distinct_id = ${sqlString(distinctId)}`,
        hasEvents('$pageview', 'e2e_custom', '$autocapture'),
        '$pageview, e2e_custom and $autocapture',
      );
      const pv = rows.find((r) => r.event === '$pageview');
      const pageURL = new URL(s.url);
      assert.equal(pv.project, TOKEN);
      assert.equal(pv.distinct_id, distinctId);
      assert.equal(pv.current_url, s.url, '$current_url column');
      assert.equal(pv.props.$current_url, s.url, '$current_url property');
      assert.equal(pv.pathname, '/index.html');
      assert.equal(pv.host, pageURL.host);
      assert.equal(pv.lib, 'web');
      assert.equal(pv.lib_version, POSTHOG_VERSION);
      assert.equal(pv.session_id, sessionId, 'session_id column is posthog.get_session_id()');
      assert.equal(pv.props.$session_id, sessionId);
      assert.match(pv.window_id, /^[0-9a-f-]{36}$/, 'window_id column holds a UUID');
      assert.equal(pv.window_id, pv.props.$window_id);
      assert.equal(pv.device_id, pv.props.$device_id ?? '');
      assert.equal(pv.props.token, TOKEN);
      assert.equal(pv.ip, '127.0.0.1');
      near(pv.ts_unix, '$pageview timestamp');

      // The uuid posthog-js made is kept, and the client's timestamp lands
      // (corrected by sent_at; browser and collector share one clock here).
      const sent = s.sentEvents();
      for (const row of [pv, rows.find((r) => r.event === 'e2e_custom')]) {
        const ev = sent.find((e) => e.uuid === row.uuid);
        assert.ok(ev, `no event with uuid ${row.uuid} (${row.event}) was sent by posthog-js: the stored uuid differs`);
        const storedMs = row.ts_unix * 1000 + row.timestamp_ms;
        const sentMs = Date.parse(ev.timestamp);
        assert.ok(Math.abs(storedMs - sentMs) < 2000, `${row.event}: stored timestamp ${new Date(storedMs).toISOString()} vs sent ${ev.timestamp}`);
      }

      const custom = rows.find((r) => r.event === 'e2e_custom');
      assert.equal(custom.props.marker, m);
      const click = rows.find((r) => r.event === '$autocapture');
      assert.equal(click.props.$event_type, 'click');
      assert.match(click.props.$elements_chain || '', /button.*id="buy"|button.*attr__id="buy"/, `$elements_chain: ${click.props.$elements_chain}`);
      assert.equal(click.current_url, s.url);
      assert.deepEqual(custom.props.nested, { n: 1, ok: true });
      assert.equal(custom.session_id, sessionId);
      assert.equal(custom.window_id, pv.window_id);
      assert.equal(custom.current_url, s.url);
      assert.equal(custom.lib, 'web');
      assert.equal(custom.lib_version, POSTHOG_VERSION);

      // How posthog-js sent it: with the remote config offering gzip-js it
      // gzips the batch (this version drops ?compression=gzip-js from the URL
      // and sends the gzip bytes as text/plain, so the collector has to
      // recognise gzip by its magic bytes), cross-origin, with CORS back.
      const carrying = s.requestsCarrying(m);
      assert.equal(carrying.length, 1, 'exactly one capture request carried the custom event');
      const req = carrying[0];
      assert.equal(req.status, 200, describeRequest(req));
      assert.equal(decodeBody(req.body, req.url).encoding, 'gzip', `expected a gzip body: ${describeRequest(req)}`);
      assert.ok(
        [null, 'gzip-js'].includes(new URL(req.url).searchParams.get('compression')),
        `unexpected compression parameter: ${describeRequest(req)}`,
      );
      assert.equal(req.origin, env.page.origin, 'the capture request is cross-origin');
      assert.equal(req.responseHeaders['access-control-allow-origin'], env.page.origin, 'CORS origin mirrored');
      s.assertClean();

      await s.verified([
        `$pageview  distinct_id=${pv.distinct_id}  current_url=${pv.current_url}  lib=${pv.lib} ${pv.lib_version}`,
        `$pageview  session_id=${pv.session_id}  window_id=${pv.window_id}`,
        `e2e_custom  marker=${custom.props.marker}  (sent as ${req.method} ${req.path}, gzip, ${req.contentType} → ${req.status})`,
        `$autocapture  ${click.props.$event_type} on ${truncate(click.props.$elements_chain, 80)}`,
      ]);
      await s.page.screenshot({ path: SCREENSHOT, fullPage: true });
    });
  });

  test('2. identify with $set / $set_once fills person_set and person_set_once', async () => {
    const m = marker('identify');
    const userId = `user-${m}`;
    await runCase(env, 'identify', { marker: m }, async (s) => {
      const { distinctId: anonId } = await s.init();
      await s.waitForRemoteConfig();
      await s.page.evaluate(
        ([uid, mk]) => {
          window.posthog.identify(uid, { email: `${mk}@example.com`, plan: 'e2e', marker: mk }, { first_seen_marker: mk });
          window.posthog.setPersonProperties({ favourite_db: 'clickhouse' }, { signup_marker: mk });
        },
        [userId, m],
      );
      assert.equal(await s.page.evaluate(() => window.posthog.get_distinct_id()), userId);

      const rows = await waitForEvents(
        env.arubug.chPort,
        `distinct_id = ${sqlString(userId)}`,
        hasEvents('$identify', '$set'),
        '$identify and $set',
      );
      const ident = rows.find((r) => r.event === '$identify');
      assert.equal(ident.props.$anon_distinct_id, anonId, '$anon_distinct_id links the anonymous id');
      assert.ok(ident.person_set, 'person_set column is empty');
      // posthog-js adds its own person properties ($current_url, $initial_*
      // and so on) next to the ones given.
      partialDeepEqual(JSON.parse(ident.person_set), { email: `${m}@example.com`, plan: 'e2e', marker: m }, 'person_set');
      partialDeepEqual(JSON.parse(ident.person_set_once), { first_seen_marker: m }, 'person_set_once');
      assert.equal(ident.lib, 'web');

      const set = rows.find((r) => r.event === '$set');
      partialDeepEqual(JSON.parse(set.person_set), { favourite_db: 'clickhouse' }, '$set person_set');
      partialDeepEqual(JSON.parse(set.person_set_once), { signup_marker: m }, '$set person_set_once');
      s.assertClean();
      await s.verified([
        `$identify  distinct_id=${ident.distinct_id}  $anon_distinct_id=${ident.props.$anon_distinct_id}`,
        `$identify  person_set=${ident.person_set}  person_set_once=${ident.person_set_once}`,
        `$set  person_set=${set.person_set}`,
      ]);
    });
  });

  test('3. disable_compression: true sends plain JSON', async () => {
    const m = marker('plain');
    await runCase(env, 'plain', { marker: m }, async (s) => {
      const { distinctId } = await s.init({ disable_compression: true });
      await s.waitForRemoteConfig();
      await s.page.evaluate((mk) => window.posthog.capture('e2e_plain', { marker: mk }, { send_instantly: true }), m);

      const rows = await waitForEvents(
        env.arubug.chPort,
        `distinct_id = ${sqlString(distinctId)} AND event = 'e2e_plain'`,
        (r) => r.length > 0,
        'e2e_plain',
      );
      assert.equal(rows[0].props.marker, m);
      assert.equal(rows[0].lib, 'web');

      const carrying = s.requestsCarrying(m);
      assert.equal(carrying.length, 1, 'exactly one request carried the event');
      const req = carrying[0];
      assert.equal(req.status, 200, describeRequest(req));
      assert.equal(decodeBody(req.body, req.url).encoding, 'plain', `body must be plain JSON: ${describeRequest(req)}`);
      assert.match(req.contentType, /^application\/json/, `content-type: ${describeRequest(req)}`);
      assert.ok(!new URL(req.url).searchParams.get('compression'), `no compression parameter expected: ${describeRequest(req)}`);
      JSON.parse(decodeBody(req.body, req.url).text);
      // application/json is not CORS-safelisted: this request needed (and
      // passed) a preflight.
      assert.equal(req.responseHeaders['access-control-allow-origin'], env.page.origin);
      for (const r of s.captureRequests()) {
        assert.notEqual(decodeBody(r.body, r.url).encoding, 'gzip', `a request was gzipped despite disable_compression: ${describeRequest(r)}`);
      }
      s.assertClean();
      await s.verified([`e2e_plain  marker=${m}  (plain JSON, ${req.contentType})`]);
    });
  });

  test('4. sendBeacon: transport option, and the flush on navigating away', async () => {
    const m = marker('beacon');
    await runCase(env, 'beacon', { marker: m }, async (s) => {
      // A beacon sent while the page unloads is handed to the browser process
      // and never shows up as a page request, so record posthog-js's calls to
      // navigator.sendBeacon (passing them through) in localStorage, which
      // the next page on this origin can read back.
      await s.page.evaluate(() => {
        const orig = navigator.sendBeacon.bind(navigator);
        localStorage.setItem('e2e_beacons', '[]');
        navigator.sendBeacon = (url, data) => {
          const ok = orig(url, data);
          const log = JSON.parse(localStorage.getItem('e2e_beacons') || '[]');
          log.push({ url: String(url), type: data && data.type, size: data && data.size, queued: ok });
          localStorage.setItem('e2e_beacons', JSON.stringify(log));
          return ok;
        };
      });
      const { distinctId } = await s.init();
      await s.waitForRemoteConfig();
      // An options object makes posthog-js send at once, here by beacon.
      await s.page.evaluate((mk) => window.posthog.capture('e2e_beacon', { marker: mk }, { transport: 'sendBeacon' }), m);
      const ping = await s.waitForRequest((x) => x.resourceType === 'ping', 'sendBeacon');
      assert.ok(ping.status >= 200 && ping.status < 300, describeRequest(ping));
      // A beacon whose body type is CORS-safelisted goes out in no-cors mode:
      // its answer is opaque and needs no CORS headers. If the browser did
      // send an Origin, the collector must still mirror it.
      if (ping.origin) assert.equal(ping.responseHeaders['access-control-allow-origin'], env.page.origin);
      // Batched, then flushed by posthog-js's pagehide handler (by beacon)
      // when the page goes away, together with $pageleave.
      await s.page.evaluate((mk) => window.posthog.capture('e2e_unload', { marker: mk }), m);
      await s.page.goto(`${env.page.origin}/other.html`, { waitUntil: 'load' });
      const beacons = JSON.parse(await s.page.evaluate(() => localStorage.getItem('e2e_beacons') || '[]'));

      const rows = await waitForEvents(
        env.arubug.chPort,
        `distinct_id = ${sqlString(distinctId)}`,
        hasEvents('e2e_beacon', 'e2e_unload', '$pageleave'),
        'e2e_beacon, e2e_unload and $pageleave',
      );
      assert.equal(rows.find((r) => r.event === 'e2e_beacon').props.marker, m);
      assert.equal(rows.find((r) => r.event === 'e2e_unload').props.marker, m);
      const leave = rows.find((r) => r.event === '$pageleave');
      assert.equal(leave.current_url, s.url);
      assert.equal(leave.lib, 'web');

      assert.ok(beacons.length >= 2, `expected posthog-js to call sendBeacon at least twice, saw ${JSON.stringify(beacons)}`);
      for (const b of beacons) {
        assert.ok(b.url.startsWith(env.arubug.origin + '/'), `beacon to ${b.url}`);
        assert.equal(b.queued, true, `the browser refused a beacon: ${JSON.stringify(b)}`);
      }
      // The events reached the collector only by beacon.
      for (const r of s.captureRequests()) {
        const text = decodeBody(r.body, r.url).text;
        assert.ok(!text.includes('"e2e_unload"') && !text.includes('"e2e_beacon"'), `sent by ${r.resourceType}, not by beacon: ${describeRequest(r)}`);
      }
      s.beaconLog = beacons;
      s.assertClean();
    });
  });

  test('5. remote config (config.js and JSON) and /flags answer 2xx, and posthog-js logged no errors in any case', async () => {
    const m = marker('flags');
    await runCase(env, 'flags', { marker: m }, async (s) => {
      const { distinctId } = await s.init();
      const cfg = await s.waitForRemoteConfig();
      assert.equal(cfg.status, 200, describeRequest(cfg));
      assert.match(cfg.responseHeaders['content-type'] || '', /javascript|json/);
      // The collector says hasFeatureFlags: false, so posthog-js skips
      // /flags on load; ask for them explicitly.
      const flagsLoaded = s.page.evaluate(
        () =>
          new Promise((resolve) => {
            window.posthog.onFeatureFlags((flags, variants, ctx) => resolve({ flags, ctx: ctx || null }));
            window.posthog.reloadFeatureFlags();
          }),
      );
      const flags = await s.waitForRequest((x) => x.path === '/flags/' || x.path === '/flags' || x.path.startsWith('/decide'), '/flags');
      assert.equal(flags.status, 200, describeRequest(flags));
      assert.equal(flags.responseHeaders['access-control-allow-origin'], env.page.origin);
      const loaded = await Promise.race([flagsLoaded, sleep(10_000).then(() => null)]);
      assert.ok(loaded, 'posthog.onFeatureFlags never fired after /flags answered');
      assert.deepEqual(loaded.flags, []);
      assert.ok(!(loaded.ctx && loaded.ctx.errorsLoading), `posthog-js reports errors loading flags: ${JSON.stringify(loaded.ctx)}`);

      await s.page.evaluate((mk) => window.posthog.capture('e2e_after_flags', { marker: mk }, { send_instantly: true }), m);
      await waitForEvents(
        env.arubug.chPort,
        `distinct_id = ${sqlString(distinctId)} AND event = 'e2e_after_flags'`,
        (r) => r.length > 0,
        'e2e_after_flags',
      );
      s.assertClean();
    });

    // With script loading off, posthog-js fetches the remote config as JSON
    // (GET /array/<token>/config, cross-origin) instead of config.js.
    await runCase(env, 'json-config', { marker: m }, async (s) => {
      await s.init({ disable_external_dependency_loading: true });
      const cfg = await s.waitForRequest((x) => x.path === `/array/${TOKEN}/config`, 'JSON remote config');
      assert.equal(cfg.status, 200, describeRequest(cfg));
      assert.equal(cfg.resourceType, 'fetch');
      assert.equal(cfg.responseHeaders['access-control-allow-origin'], env.page.origin);
      assert.equal(JSON.parse(cfg.responseBody).token, TOKEN);
      assert.ok(!s.requests.some((x) => x.path.endsWith('/config.js')), 'config.js was loaded although script loading is off');
      // posthog-js applied it: the capture endpoint and gzip come from it.
      await s.page.evaluate((mk) => window.posthog.capture('e2e_json_config', { marker: mk }, { send_instantly: true }), m);
      const req = await s.waitForRequest((x) => s.requestsCarrying(m).includes(x), 'capture after JSON config');
      assert.equal(req.status, 200, describeRequest(req));
      assert.equal(req.path, '/e/');
      assert.equal(decodeBody(req.body, req.url).encoding, 'gzip', describeRequest(req));
      s.assertClean();
    });

    // Across every case: each request posthog-js made to the collector got 2xx.
    const bad = allRequests.filter((r) => r.failure || (r.status !== null && (r.status < 200 || r.status > 299)));
    assert.deepEqual(bad.map(describeRequest), [], 'requests the collector did not answer with 2xx');
    const paths = new Set(allRequests.map((r) => `${r.method} ${r.path}`));
    assert.ok(paths.has(`GET /array/${TOKEN}/config.js`) || paths.has(`GET /array/${TOKEN}/config`), `no remote config call seen: ${[...paths]}`);
  });
  // posthog-js's npm ES module (dist/module.js, what `import posthog from
  // 'posthog-js'` puts into most apps) carries no surveys code: after the
  // remote config it loads `${api_host}/static/<version>/surveys.js`, then
  // `/static/surveys.js?v=<version>`, even with "surveys": false. Arubug
  // serves neither (404 without CORS headers), so the browser logs CORS
  // errors and posthog-js logs "[Surveys] Could not load surveys script".
  // Events still arrived. The collector now leaves "surveys" out of the
  // remote config, which posthog-js reads as "nothing to load"; this case
  // keeps it that way.
  test(
    '6. npm ES module build (dist/module.js): events arrive, and nothing it loads from api_host fails',
    async () => {
      const m = marker('module');
      await runCase(
        env,
        'module',
        { marker: m },
        async (s) => {
          const { distinctId, version } = await s.init();
          assert.equal(version, POSTHOG_VERSION);
          await s.waitForRemoteConfig();
          await s.page.evaluate((mk) => window.posthog.capture('e2e_module', { marker: mk }, { send_instantly: true }), m);
          const rows = await waitForEvents(
            env.arubug.chPort,
            `distinct_id = ${sqlString(distinctId)}`,
            hasEvents('$pageview', 'e2e_module'),
            '$pageview and e2e_module',
          );
          const ev = rows.find((r) => r.event === 'e2e_module');
          assert.equal(ev.props.marker, m);
          assert.equal(ev.lib, 'web');
          assert.equal(ev.lib_version, POSTHOG_VERSION);
          // Give posthog-js time for the lazy loads it starts after the
          // remote config, then require that none of them failed.
          await sleep(1000);
          s.assertClean();
        },
        '/module.html',
      );
    },
  );
});
