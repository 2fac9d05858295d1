// Vendors the UI's one charting library, uPlot, from npm into the embedded
// assets. Reproducible: the files are copied byte for byte from the package
// that package-lock.json pins (npm ci checks its integrity), and
// ../assets/vendor/VENDOR.json records the version and each file's SHA-256.
//   node vendor.mjs           copy into ../assets/vendor
//   node vendor.mjs --check   fail if ../assets/vendor differs from the package
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const out = join(root, '..', 'assets', 'vendor');
const pkg = join(root, 'node_modules', 'uplot');
const files = [
  ['dist/uPlot.iife.min.js', 'uPlot.iife.min.js'],
  ['dist/uPlot.min.css', 'uPlot.min.css'],
  ['LICENSE', 'uPlot.LICENSE'],
];
const sha256 = (b) => createHash('sha256').update(b).digest('hex');

if (!existsSync(pkg)) {
  console.error('vendor: node_modules/uplot is missing; run `npm ci` first');
  process.exit(1);
}
const version = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')).version;
const manifest = { package: 'uplot', version, source: 'https://www.npmjs.com/package/uplot', files: {} };
for (const [from, to] of files) manifest.files[to] = { from, sha256: sha256(readFileSync(join(pkg, from))) };
const manifestText = JSON.stringify(manifest, null, 2) + '\n';

if (process.argv.includes('--check')) {
  const diffs = [];
  for (const [from, to] of files) {
    const p = join(out, to);
    if (!existsSync(p)) diffs.push(`${to} is missing`);
    else if (!readFileSync(p).equals(readFileSync(join(pkg, from)))) diffs.push(`${to} differs from uplot@${version}'s ${from}`);
  }
  const m = join(out, 'VENDOR.json');
  if (!existsSync(m) || readFileSync(m, 'utf8') !== manifestText) diffs.push('VENDOR.json does not match the installed package');
  if (diffs.length) {
    console.error('check-vendor: internal/web/assets/vendor is out of date; run `make web-vendor`:\n  ' + diffs.join('\n  '));
    process.exit(1);
  }
  console.log(`check-vendor: uplot ${version} vendored files match`);
} else {
  mkdirSync(out, { recursive: true });
  for (const [from, to] of files) copyFileSync(join(pkg, from), join(out, to));
  writeFileSync(join(out, 'VENDOR.json'), manifestText);
  console.log(`vendored uplot ${version} into internal/web/assets/vendor`);
}
