// Bundles the browser page: client/main.ts → dist/client/main.js (ESM, ES2022, minified, with a source map),
// plus index.html and style.css. The server serves dist/client/ flat, so everything lands in one folder.
// Type checking is separate (`tsc -p client/tsconfig.json`); esbuild only strips types.
import { build } from 'esbuild';
import { copyFile, mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = `${root}dist/client`;
const started = performance.now();

await mkdir(out, { recursive: true });
await Promise.all([
  build({
    entryPoints: [`${root}client/main.ts`],
    outfile: `${out}/main.js`,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    sourcemap: true,
    legalComments: 'none',
    logLevel: 'warning',
  }),
  copyFile(`${root}client/index.html`, `${out}/index.html`),
  copyFile(`${root}client/style.css`, `${out}/style.css`),
]);
console.log(`client built to dist/client in ${Math.round(performance.now() - started)} ms`);
