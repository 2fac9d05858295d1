#!/usr/bin/env node
// Generates vectors.json: golden vectors produced by the real npm
// lz-string 1.5.0 (the version posthog-js bundles for compression=lz64).
//
// Usage (from this directory; node_modules must not end up in the repo):
//
//   npm install --prefix /tmp/lzgen lz-string@1.5.0
//   NODE_PATH=/tmp/lzgen/node_modules node gen.js
//
// The output is deterministic: random cases use a fixed-seed PRNG.
'use strict';

const fs = require('fs');
const path = require('path');
const LZString = require('lz-string');
const version = require('lz-string/package.json').version;

if (version !== '1.5.0') {
  throw new Error('expected lz-string 1.5.0, got ' + version);
}

// mulberry32: tiny deterministic PRNG so the vectors are reproducible.
function mulberry32(seed) {
  return function () {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomFrom(rand, alphabet, n) {
  const chars = Array.from(alphabet);
  let s = '';
  for (let i = 0; i < n; i++) s += chars[Math.floor(rand() * chars.length)];
  return s;
}

function randomCodePoints(rand, n, lo, hi) {
  let s = '';
  for (let i = 0; i < n; i++) {
    let cp;
    do {
      cp = lo + Math.floor(rand() * (hi - lo + 1));
    } while (cp >= 0xd800 && cp <= 0xdfff); // keep the text valid UTF-16
    s += String.fromCodePoint(cp);
  }
  return s;
}

function uuidish(rand) {
  const h = () => Math.floor(rand() * 16).toString(16);
  let s = '';
  for (const n of [8, 4, 4, 4, 12]) {
    if (s) s += '-';
    for (let i = 0; i < n; i++) s += h();
  }
  return s;
}

// A realistic posthog-js /e/ batch body (what gets lz64-compressed).
function posthogBatch(rand, nEvents) {
  const distinct = uuidish(rand);
  const session = uuidish(rand);
  const win = uuidish(rand);
  const events = [];
  const names = ['$pageview', '$autocapture', '$pageleave', 'signup_clicked', '$web_vitals'];
  let t = 1718000000000;
  for (let i = 0; i < nEvents; i++) {
    t += Math.floor(rand() * 5000);
    const ev = names[i % names.length];
    const props = {
      $os: 'Mac OS X',
      $os_version: '14.5.0',
      $browser: 'Chrome',
      $device_type: 'Desktop',
      $current_url: 'https://app.example.com/dashboard/' + (i + 1) + '?tab=overview',
      $host: 'app.example.com',
      $pathname: '/dashboard/' + (i + 1),
      $raw_user_agent: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
      $browser_version: 126,
      $browser_language: 'en-US',
      $screen_height: 1117,
      $screen_width: 1728,
      $viewport_height: 959,
      $viewport_width: 1728,
      $lib: 'web',
      $lib_version: '1.139.2',
      $insert_id: Math.floor(rand() * 1e16).toString(36),
      $time: t / 1000,
      distinct_id: distinct,
      $device_id: distinct,
      $referrer: '$direct',
      $referring_domain: '$direct',
      token: 'phc_TestTokenAbCdEf0123456789',
      $session_id: session,
      $window_id: win,
      $pageview_id: uuidish(rand),
    };
    if (ev === '$autocapture') {
      props.$event_type = 'click';
      props.$el_text = 'Créer un compte — 立即注册 🚀';
      props.$elements_chain = 'button.btn.btn-primary:nth-child="2"nth-of-type="1"text="Sign up"';
    }
    events.push({
      uuid: uuidish(rand),
      event: ev,
      properties: props,
      timestamp: new Date(t).toISOString(),
    });
  }
  return JSON.stringify(events);
}

// codeUnits lists UTF-16 code units; Array.from would iterate code points
// and merge surrogate pairs.
function codeUnits(s) {
  const out = new Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

const rand = mulberry32(0x5eed1234);
const cases = [];
function add(name, input) {
  cases.push({
    name,
    input,
    base64: LZString.compressToBase64(input),
    // lz-string's raw compress() output as UTF-16 code units (16 bits/char).
    utf16: codeUnits(LZString.compress(input)),
  });
}

add('empty', '');
add('single_ascii', 'a');
add('two_same', 'aa');
add('three_same', 'aaa');
add('two_distinct', 'ab');
add('hello_world', 'hello world');
add('pangram', 'The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog!');
add('abab', 'ab'.repeat(64));
add('printable_ascii', Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join(''));
add('control_chars', Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join('') + '\u007f');
add('latin1_high', Array.from({ length: 128 }, (_, i) => String.fromCharCode(128 + i)).join(''));
add('boundary_ff_100', '\u00ff\u0100\u00ff\u0100\uffff\u0000\uffff');
add('e_acute', 'é');
add('cafe', 'café crème brûlée, naïve façade');
add('chinese', '中文');
add('chinese_sentence', '我能吞下玻璃而不伤身体。我能吞下玻璃而不伤身体。');
add('emoji', '😀');
add('emoji_repeated', '😀😀😀😀😀😀😀😀');
add('emoji_zwj_family', '👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 𝄞 clef, 🚀🚀');
add('mixed_unicode', 'Ünïcödé — Ελληνικά — Русский — עברית — العربية — हिन्दी — 日本語 — 한국어 — 😀🎉');
add('replacement_char', '\ufffd\ufffd x \ufffd');
add('nul_in_middle', 'abc\u0000def\u0000\u0000ghi');
add('multiline', 'line one\nline two\r\n\tindented\n\n\nend');
// lz-string keys its dictionary with a plain object, where assigning
// dict["__proto__"] is a no-op: these inputs exercise that quirk (their
// output differs from a "clean" LZW implementation).
add('proto_quirk_short', '__proto____proto____proto__');
add('proto_quirk_repeat', '__proto__'.repeat(60));
add('proto_quirk_json', Array.from({ length: 80 }, (_, i) => '{"__proto__":{"isAdmin":true},"n":' + i + '}').join(','));
add('object_keys', JSON.stringify({ constructor: 1, toString: 2, hasOwnProperty: 3, valueOf: 4, __proto__x: 5, prototype: 6 }));
add('posthog_single_event', posthogBatch(rand, 1));
add('posthog_batch_2kb', posthogBatch(rand, 2));
add('posthog_batch_large', posthogBatch(rand, 20));
add('repetitive_a_100k', 'a'.repeat(100000));
add('repetitive_json_100k', JSON.stringify({ event: '$pageview', properties: { $current_url: 'https://example.com/' } }).repeat(1400).slice(0, 100000));
add('repetitive_emoji_20k', '😀'.repeat(10000));
add('random_ab_10k', randomFrom(rand, 'ab', 10000));
add('random_lower_20k', randomFrom(rand, 'abcdefghijklmnopqrstuvwxyz', 20000));
add('random_ascii_1k', randomCodePoints(rand, 1000, 32, 126));
add('random_ascii_5k', randomCodePoints(rand, 5000, 0, 127));
add('random_latin1_2k', randomCodePoints(rand, 2000, 0, 255));
add('random_bmp_1k', randomCodePoints(rand, 1000, 0, 0xffff));
add('random_bmp_8k', randomCodePoints(rand, 8000, 0x100, 0xffff));
add('random_astral_1k', randomCodePoints(rand, 1000, 0x10000, 0x10ffff));
add('random_mixed_3k', randomCodePoints(rand, 1000, 0, 127) + randomCodePoints(rand, 1000, 0, 0x10ffff) + randomFrom(rand, 'xyz😀é', 1000));

// Streams whose decompressed text is not valid UTF-16 (lone surrogates);
// JS accepts them, the Go port must reject them as invalid text.
const loneSurrogates = [];
function addLone(name, units) {
  const input = String.fromCharCode(...units);
  loneSurrogates.push({
    name,
    units,
    base64: LZString.compressToBase64(input),
    roundtrip_ok: LZString.decompressFromBase64(LZString.compressToBase64(input)) === input,
  });
}
addLone('lone_high', [0xd800]);
addLone('lone_low', [0xdc00]);
addLone('high_then_ascii', [0x61, 0xd83d, 0x62]);
addLone('reversed_pair', [0xde00, 0xd83d]);
addLone('trailing_high', [0x61, 0x62, 0xd83d]);

const out = {
  generator: 'gen.js with npm lz-string ' + version + ', node ' + process.version,
  cases,
  lone_surrogates: loneSurrogates,
};
// One case per line keeps the file reviewable and diffs small.
const text =
  '{"generator":' + JSON.stringify(out.generator) + ',\n' +
  '"cases":[\n' + out.cases.map((c) => JSON.stringify(c)).join(',\n') + '\n],\n' +
  '"lone_surrogates":[\n' + out.lone_surrogates.map((c) => JSON.stringify(c)).join(',\n') + '\n]}\n';
JSON.parse(text); // sanity check
fs.writeFileSync(path.join(__dirname, 'vectors.json'), text);
console.log('wrote', cases.length, 'cases and', loneSurrogates.length, 'lone-surrogate cases');
