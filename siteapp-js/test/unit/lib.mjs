// Bundles the DOM-free modules (src/logic.ts) with esbuild into a temp file
// and imports it, so the unit tests run against the TypeScript sources.
import * as esbuild from 'esbuild';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const r = await esbuild.build({
  entryPoints: [join(root, 'src/logic.ts')],
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  write: false,
  logLevel: 'error',
});
const file = join(mkdtempSync(join(tmpdir(), 'arubug-unit-')), 'logic.mjs');
writeFileSync(file, r.outputFiles[0].contents);
export const lib = await import(pathToFileURL(file).href);
