import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { lib } from './lib.mjs';

const {
  redactUrl, cap, Ring, uuidv4, installCapture, recordConsole, recordNetwork, buildEvent, capMetadata,
  sendWithRetry, sendOnce, parseRetryAfter, backoff, Queue, MAX_REPORTS, MAX_BYTES, resolveStrings, en, de,
  collectContext, posthogFlags, withoutScreenshot,
} = lib;

describe('redaction', () => {
  const cases = [
    ['https://a.example/p?x=1&y=2', 'https://a.example/p?x=1&y=2'],
    ['https://a.example/p?token=abc&x=1', 'https://a.example/p?token=[redacted]&x=1'],
    ['https://a.example/p?api_key=abc', 'https://a.example/p?api_key=[redacted]'],
    ['https://a.example/p?KEY=abc', 'https://a.example/p?KEY=[redacted]'],
    ['https://a.example/p?client_secret=s&password=p&Authorization=a', 'https://a.example/p?client_secret=[redacted]&password=[redacted]&Authorization=[redacted]'],
    ['https://a.example/p?sessionid=1&code=2&state=3', 'https://a.example/p?sessionid=[redacted]&code=[redacted]&state=3'],
    ['https://a.example/p?oauth_token=1#frag', 'https://a.example/p?oauth_token=[redacted]#frag'],
    ['https://a.example/#/route?access_token=zz&a=b', 'https://a.example/#/route?access_token=[redacted]&a=b'],
    ['/relative?auth=1&ok=2', '/relative?auth=[redacted]&ok=2'],
    ['https://a.example/p?my%5Ftoken=1', 'https://a.example/p?my%5Ftoken=[redacted]'],
    ['https://a.example/p?flag&keyless', 'https://a.example/p?flag&keyless'],
    ['https://a.example/p?ok=token', 'https://a.example/p?ok=token'],
    ['https://a.example/p', 'https://a.example/p'],
    ['', ''],
    [null, ''],
  ];
  for (const [input, want] of cases) test(String(input), () => assert.equal(redactUrl(input), want));
  test('caps long URLs at 1000 chars', () => {
    assert.equal(redactUrl('https://a/' + 'x'.repeat(5000)).length, 1000);
    assert.equal(cap('y'.repeat(2000)).length, 1000);
    assert.equal(cap(undefined), '');
  });
});

describe('ring buffers', () => {
  test('keep the newest N, oldest first', () => {
    const r = new Ring(3);
    for (let i = 1; i <= 5; i++) r.push(i);
    assert.deepEqual(r.toArray(), [3, 4, 5]);
    assert.equal(r.length, 3);
  });

  test('console wrapper: 50 entries, warn+error only, original still called, capped', () => {
    const calls = [];
    const g = { console: { error: (...a) => calls.push(['error', ...a]), warn: (...a) => calls.push(['warn', ...a]), log: () => {} } };
    const rec = installCapture(g);
    assert.equal(installCapture(g), rec, 'installs once');
    for (let i = 0; i < 60; i++) g.console[i % 2 ? 'warn' : 'error']('msg', i);
    g.console.log('not captured');
    g.console.error('z'.repeat(5000));
    assert.equal(calls.length, 61);
    const c = rec.console.toArray();
    assert.equal(c.length, 50);
    assert.equal(c[0].message, 'msg 11');
    assert.equal(c[48].message, 'msg 59');
    assert.equal(c[49].message.length, 1000);
    assert.deepEqual(Object.keys(c[0]).sort(), ['at', 'level', 'message']);
    assert.equal(c[0].level, 'warn');
  });

  test('fetch wrapper: failed requests only, 20 entries, status 0 for network errors, redacted, no bodies', async () => {
    let n = 0;
    const g = {
      fetch: async (url, init) => {
        n++;
        if (url.includes('down')) throw new TypeError('Failed to fetch');
        return { status: url.includes('good') ? 200 : 500 };
      },
    };
    const rec = installCapture(g);
    rec.ignore.push('https://collector');
    await g.fetch('https://x/good');
    await g.fetch('https://collector/e/', { method: 'POST' }).catch(() => {});
    for (let i = 0; i < 25; i++) await g.fetch(`https://x/fail/${i}?token=secret`, { method: 'post', body: 'SECRET BODY' });
    await g.fetch('https://x/down').catch(() => {});
    await new Promise((r) => setTimeout(r, 0));
    const net = rec.network.toArray();
    assert.equal(net.length, 20);
    assert.equal(net[0].url, 'https://x/fail/6?token=[redacted]');
    assert.equal(net[0].method, 'POST');
    assert.equal(net[0].status, 500);
    assert.deepEqual(net[19], { ...net[19], method: 'GET', url: 'https://x/down', status: 0 });
    assert.deepEqual(Object.keys(net[0]).sort(), ['at', 'duration_ms', 'method', 'status', 'url']);
    assert.ok(!JSON.stringify(net).includes('SECRET BODY'));
    assert.equal(n, 28);
  });
});

describe('uuid', () => {
  test('unique v4 UUIDs, also via the getRandomValues fallback', () => {
    const re = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    const seen = new Set();
    const fallback = { getRandomValues: (a) => globalThis.crypto.getRandomValues(a) };
    for (let i = 0; i < 5000; i++) {
      for (const u of [uuidv4(), uuidv4(fallback), uuidv4({})]) {
        assert.match(u, re);
        assert.ok(!seen.has(u));
        seen.add(u);
      }
    }
  });
});

function memStorage() {
  const m = new Map();
  return { m, getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k) };
}

describe('offline queue', () => {
  test('at most 10 reports, oldest dropped', () => {
    const q = new Queue(memStorage());
    for (let i = 0; i < 15; i++) q.add({ uuid: 'u' + i, url: 'u', body: 'b' });
    assert.equal(MAX_REPORTS, 10);
    assert.deepEqual(q.list().map((p) => p.uuid), ['u5', 'u6', 'u7', 'u8', 'u9', 'u10', 'u11', 'u12', 'u13', 'u14']);
  });
  test('at most 1 MB, oldest dropped; same uuid replaces', () => {
    const st = memStorage();
    const q = new Queue(st);
    for (let i = 0; i < 6; i++) q.add({ uuid: 'u' + i, url: 'u', body: 'x'.repeat(300_000) });
    assert.equal(MAX_BYTES, 1_000_000);
    assert.ok(st.getItem('arubug:pending').length <= MAX_BYTES);
    assert.deepEqual(q.list().map((p) => p.uuid), ['u3', 'u4', 'u5']);
    q.add({ uuid: 'u4', url: 'u', body: 'small' });
    assert.deepEqual(q.list().map((p) => p.uuid), ['u3', 'u5', 'u4']);
  });
  test('a quota error drops the oldest until it fits', () => {
    const st = memStorage();
    const set = st.setItem;
    st.setItem = (k, v) => { if (v.length > 2000) throw new Error('QuotaExceededError'); set(k, v); };
    const q = new Queue(st);
    for (let i = 0; i < 5; i++) q.add({ uuid: 'u' + i, url: 'u', body: 'x'.repeat(700) });
    assert.deepEqual(q.list().map((p) => p.uuid), ['u3', 'u4']);
  });
  test('flush sends each report once, even when called concurrently; keeps retryable ones', async () => {
    const q = new Queue(memStorage());
    for (const u of ['a', 'b', 'c', 'd']) q.add({ uuid: u, url: 'u', body: u });
    const sent = [];
    const send = async (p) => {
      sent.push(p.uuid);
      await new Promise((r) => setTimeout(r, 5));
      if (p.uuid === 'b') return { ok: false, permanent: true, status: 400, message: 'bad' };
      if (p.uuid === 'c') return { ok: false, permanent: false, status: 503 };
      return { ok: true, status: 200 };
    };
    await Promise.all([q.flush(send), q.flush(send), q.flush(send)]);
    assert.deepEqual(sent, ['a', 'b', 'c']);
    assert.deepEqual(q.list().map((p) => p.uuid), ['c', 'd']);
    sent.length = 0;
    await q.flush(async (p) => (sent.push(p.uuid), { ok: true, status: 200 }), (id) => id === 'd');
    assert.deepEqual(sent, ['c']);
    assert.deepEqual(q.list().map((p) => p.uuid), ['d']);
  });
  test('no storage: nothing breaks', () => {
    const q = new Queue(null);
    q.add({ uuid: 'a', url: 'u', body: 'b' });
    assert.deepEqual(q.list(), []);
  });
});

describe('retry and backoff', () => {
  function fakeClock() {
    const c = { now: 0, sleeps: [], sleep: async (ms) => { c.sleeps.push(ms); c.now += ms; } };
    return c;
  }
  test('honours Retry-After, then exponential backoff, same body every time', async () => {
    const clock = fakeClock();
    const answers = [
      { status: 429, retryAfter: '7' },
      { status: 503, retryAfter: null },
      { status: 0, throw: true },
      { status: 200, text: '{"status":1}' },
    ];
    const bodies = [];
    const t = async (url, body) => {
      bodies.push(body);
      const a = answers.shift();
      if (a.throw) throw new TypeError('network');
      return a;
    };
    const r = await sendWithRetry(t, 'https://c/e/', '{"uuid":"x"}', { sleep: clock.sleep });
    assert.deepEqual(r, { ok: true, status: 200 });
    assert.deepEqual(clock.sleeps, [7000, 2000, 4000]);
    assert.equal(new Set(bodies).size, 1);
    assert.equal(bodies.length, 4);
  });
  test('gives up after 4 attempts with a retryable result', async () => {
    const clock = fakeClock();
    const r = await sendWithRetry(async () => ({ status: 503, retryAfter: '1' }), 'u', 'b', { sleep: clock.sleep });
    assert.equal(r.ok, false);
    assert.equal(r.permanent, false);
    assert.equal(r.status, 503);
    assert.deepEqual(clock.sleeps, [1000, 1000, 1000]);
  });
  test('4xx is permanent with the server message, no retry', async () => {
    const clock = fakeClock();
    let n = 0;
    const r = await sendWithRetry(async () => (n++, { status: 400, text: '{"detail":"$description is required"}' }), 'u', 'b', { sleep: clock.sleep });
    assert.deepEqual(r, { ok: false, permanent: true, status: 400, message: '$description is required' });
    assert.equal(n, 1);
  });
  test('offline: no request, offline result', async () => {
    let n = 0;
    const r = await sendWithRetry(async () => (n++, { status: 200 }), 'u', 'b', { isOnline: () => false });
    assert.equal(n, 0);
    assert.equal(r.offline, true);
  });
  test('Retry-After parsing and backoff caps', () => {
    assert.equal(parseRetryAfter('3'), 3000);
    assert.equal(parseRetryAfter('100000'), 120000);
    assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4_000), 6000);
    assert.equal(parseRetryAfter('soon'), undefined);
    assert.equal(parseRetryAfter(null), undefined);
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map(backoff), [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  });
});

describe('payload', () => {
  const ph = {
    get_session_id: () => 'sess-ph',
    get_distinct_id: () => 'd-ph',
    featureFlags: { getFlags: () => ['new-ui', 'beta'] },
    sessionManager: { checkAndGetSessionAndWindowId: () => ({ windowId: 'win-ph' }) },
  };
  const win = {
    location: { href: 'https://app.example/x?session=abc&tab=2', pathname: '/x', host: 'app.example' },
    document: { referrer: 'https://ref.example/?code=123' },
    navigator: { language: 'de-DE', userAgent: 'UA/1.0' },
    screen: { width: 1920, height: 1080 },
    innerWidth: 320,
    innerHeight: 640,
  };
  test('exact property names and shape', () => {
    const ctx = collectContext(win, ph, { sessionId: 's', windowId: 'w' });
    const ev = buildEvent({
      token: 'phc_t',
      distinctId: 'd-ph',
      uuid: '0190d2a4-3b1c-4c5e-8f00-000000000001',
      now: new Date('2026-01-02T03:04:05.678Z'),
      form: { description: 'It broke', productArea: 'billing', severity: 'high', email: ' a@b.co ', name: 'Ann', honeypot: '' },
      context: ctx,
      console: [{ level: 'error', message: 'boom', at: '2026-01-02T03:04:00.000Z' }],
      network: [{ method: 'GET', url: 'https://api/x', status: 500, duration_ms: 12, at: '2026-01-02T03:04:01.000Z' }],
      openedAt: 1000,
      submittedAt: 4500,
      appMetadata: { plan: 'pro' },
    });
    assert.deepEqual(Object.keys(ev).sort(), ['api_key', 'distinct_id', 'event', 'properties', 'timestamp', 'uuid']);
    assert.equal(ev.api_key, 'phc_t');
    assert.equal(ev.event, '$bug_report');
    assert.equal(ev.timestamp, '2026-01-02T03:04:05.678Z');
    const p = ev.properties;
    assert.deepEqual(Object.keys(p).sort(), [
      '$active_feature_flags', '$app_metadata', '$browser_language', '$console', '$current_url', '$description', '$email',
      '$host', '$hp', '$lib', '$name', '$network', '$pathname', '$product_area', '$raw_user_agent', '$referrer',
      '$screen_height', '$screen_width', '$session_id', '$severity', '$time_to_submit_ms', '$timezone',
      '$viewport_height', '$viewport_width', '$window_id',
    ]);
    assert.equal(p.$description, 'It broke');
    assert.equal(p.$product_area, 'billing');
    assert.equal(p.$severity, 'high');
    assert.equal(p.$email, 'a@b.co');
    assert.equal(p.$hp, '');
    assert.equal(p.$time_to_submit_ms, 3500);
    assert.equal(p.$current_url, 'https://app.example/x?session=[redacted]&tab=2');
    assert.equal(p.$referrer, 'https://ref.example/?code=[redacted]');
    assert.equal(p.$session_id, 'sess-ph');
    assert.equal(p.$window_id, 'win-ph');
    assert.deepEqual(p.$active_feature_flags, ['new-ui', 'beta']);
    assert.equal(p.$viewport_width, 320);
    assert.deepEqual(p.$app_metadata, { plan: 'pro' });
  });
  test('defaults and guards: broken posthog, bad severity, no email', () => {
    const broken = { get_session_id() { throw new Error('x'); }, featureFlags: null };
    const ctx = collectContext({ location: { href: 'https://a/' } }, broken, { sessionId: 's', windowId: 'w' });
    assert.equal(ctx.$session_id, 's');
    assert.equal(ctx.$window_id, 'w');
    assert.equal(posthogFlags(broken), undefined);
    const ev = buildEvent({ token: 't', distinctId: 'd', uuid: 'u', now: new Date(0), form: { description: 'x', severity: 'urgent' }, context: ctx, console: [], network: [], openedAt: 5, submittedAt: 1 });
    assert.equal(ev.properties.$severity, 'medium');
    assert.equal(ev.properties.$product_area, 'not-sure');
    assert.equal(ev.properties.$time_to_submit_ms, 0);
    assert.ok(!('$email' in ev.properties));
    assert.ok(!('$app_metadata' in ev.properties));
  });
  test('the screenshot travels as $screenshot; withoutScreenshot drops only it', () => {
    const shot = 'data:image/jpeg;base64,' + 'A'.repeat(100);
    const ev = buildEvent({ token: 't', distinctId: 'd', uuid: 'u', now: new Date(0), form: { description: 'x', screenshot: shot }, context: {}, console: [], network: [], openedAt: 0, submittedAt: 1 });
    assert.equal(ev.properties.$screenshot, shot);
    const body = JSON.stringify(ev);
    const slim = JSON.parse(withoutScreenshot(body));
    assert.equal(slim.properties.$screenshot, undefined);
    assert.equal(slim.uuid, 'u');
    assert.equal(slim.properties.$description, 'x');
    const none = JSON.stringify(buildEvent({ token: 't', distinctId: 'd', uuid: 'u', now: new Date(0), form: { description: 'x' }, context: {}, console: [], network: [], openedAt: 0, submittedAt: 1 }));
    assert.equal(withoutScreenshot(none), none);
    assert.equal(withoutScreenshot('not json'), 'not json');
  });
  test('app metadata is size-capped', () => {
    assert.deepEqual(capMetadata({ big: 'x'.repeat(20_000) }), { $truncated: true, $size: 20_010 });
    const cyc = {};
    cyc.self = cyc;
    assert.deepEqual(capMetadata(cyc), { $unserialisable: true });
    assert.equal(capMetadata(undefined), undefined);
  });
});

describe('strings', () => {
  test('English default, overrides win, unknown keys ignored', () => {
    const s = resolveStrings(undefined, { launcher: 'Found a bug?', nope: 'x' });
    assert.equal(s.launcher, 'Found a bug?');
    assert.equal(s.submit, en.submit);
    assert.ok(!('nope' in s));
  });
  test('German locale (also de-AT), with overrides', () => {
    assert.equal(resolveStrings('de').launcher, 'Fehler melden');
    assert.equal(resolveStrings('de-AT').submit, 'Meldung senden');
    assert.equal(resolveStrings('de', { submit: 'Abschicken' }).submit, 'Abschicken');
    assert.equal(resolveStrings('fr').launcher, 'Report a bug');
  });
  test('German has every English key', () => {
    assert.deepEqual(Object.keys(de).sort(), Object.keys(en).sort());
    for (const k of Object.keys(de)) assert.ok(de[k].length > 0, k);
  });
});
