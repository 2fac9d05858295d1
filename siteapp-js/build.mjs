// Reproducible build: src/*.ts -> dist/. Same input gives byte-identical output
// (no timestamps, no absolute paths, no source maps).
//   node build.mjs            build into dist/
//   node build.mjs --out DIR  build into DIR
//   node build.mjs --check    build into a temp dir and fail if dist/ differs
import * as esbuild from 'esbuild';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, copyFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = dirname(fileURLToPath(import.meta.url));
process.chdir(root);
const args = process.argv.slice(2);
const check = args.includes('--check');
const outIdx = args.indexOf('--out');
const out = check ? mkdtempSync(join(tmpdir(), 'arubug-build-')) : outIdx >= 0 ? args[outIdx + 1] : join(root, 'dist');
const BUDGET_GZIP = 15 * 1024;

const common = {
  bundle: true,
  minify: true,
  target: 'es2020',
  legalComments: 'none',
  charset: 'utf8',
  logLevel: 'warning',
  write: false,
  absWorkingDir: root,
};

const builds = [
  { entryPoints: ['src/standalone.ts'], format: 'iife', outfile: 'arubug.js' },
  { entryPoints: ['src/site-app.ts'], format: 'esm', outfile: 'site-app.js' },
  { entryPoints: ['src/site-app-loader.ts'], format: 'iife', outfile: 'site-app-loader.js' },
  // Loaded lazily (import()) by the three above, from their own directory.
  { entryPoints: ['src/screenshot.ts'], format: 'esm', outfile: 'screenshot.js' },
];
// Copied as is: the real posthog-js for the dev demo's second page, served
// by the collector (no CDN). Not a widget bundle: no budget.
const copies = [['node_modules/posthog-js/dist/array.full.js', 'posthog-array.full.js']];

mkdirSync(out, { recursive: true });
const sizes = [];
for (const b of builds) {
  const r = await esbuild.build({ ...common, ...b, outfile: join(out, b.outfile) });
  for (const f of r.outputFiles) {
    writeFileSync(f.path, f.contents);
    const gz = gzipSync(f.contents, { level: 9 }).length;
    sizes.push({ file: b.outfile, bytes: f.contents.length, gz });
  }
}
copyFileSync(join(root, 'plugin.json'), join(out, 'plugin.json'));

let over = false;
for (const s of sizes) {
  const flag = s.gz > BUDGET_GZIP ? '  OVER BUDGET (15 KB gzipped)' : '';
  if (flag) over = true;
  console.log(`${s.file.padEnd(22)} ${String(s.bytes).padStart(7)} bytes, ${String(s.gz).padStart(6)} bytes gzipped${flag}`);
}
for (const [from, to] of copies) {
  copyFileSync(join(root, from), join(out, to));
  const b = readFileSync(join(out, to));
  console.log(`${to.padEnd(22)} ${String(b.length).padStart(7)} bytes, ${String(gzipSync(b, { level: 9 }).length).padStart(6)} bytes gzipped (copied from posthog-js, not budgeted)`);
}
if (over) process.exitCode = 1;

if (check) {
  const dist = join(root, 'dist');
  const names = (d) => (existsSync(d) ? readdirSync(d).sort() : []);
  const a = names(dist), b = names(out);
  const diffs = [];
  if (a.join() !== b.join()) diffs.push(`file lists differ: dist=[${a}] fresh=[${b}]`);
  for (const n of b) if (a.includes(n) && !readFileSync(join(dist, n)).equals(readFileSync(join(out, n)))) diffs.push(`${n} differs`);
  rmSync(out, { recursive: true, force: true });
  if (diffs.length) {
    console.error('check-build: dist/ is out of date; run `npm run build` and commit dist/:\n  ' + diffs.join('\n  '));
    process.exit(1);
  }
  console.log('check-build: dist/ is up to date');
}
