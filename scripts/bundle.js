// Bundles what tsc wrote to dist/ into dist/bundle/, which bin/mailpoll.js runs.
//
// Why: cron starts mailpoll every minute, and Node 20's ES module loader spends about 100 ms
// resolving, reading and linking the ~300 files of our code, imapflow, zod, yaml and commander,
// one by one, before the first byte goes to the server. One file per lazily loaded piece (esbuild
// code splitting keeps every `await import()` a separate chunk) does that work once.
//
// Left outside the bundle, loaded by Node from node_modules as before:
// - better-sqlite3: a native addon.
// - mailparser and the libraries src/parse/mime-fast.ts calls through createRequire: bundling the
//   ones imported and requiring the others would load two copies of each into the worker.
// - pino and pino-pretty: their CommonJS exports do not survive esbuild's interop for
//   `await import()`, and they load off the hot path.
//
// The layout keeps every `new URL(..., import.meta.url)` of src/ right: dist/bundle/ is as deep as
// dist/cli/, the worker entry sits beside the chunks as ./analyse-worker.js, and the migrations are
// copied to ./migrations/.
import { build } from 'esbuild';
import { cpSync, rmSync } from 'node:fs';

const dist = new URL('../dist/', import.meta.url);
const out = new URL('bundle/', dist);
rmSync(out, { recursive: true, force: true });

await build({
  entryPoints: [new URL('cli/main.js', dist).pathname, new URL('parse/analyse-worker.js', dist).pathname],
  outdir: out.pathname,
  entryNames: '[name]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['better-sqlite3', 'mailparser'],
  // Bundled CommonJS packages require() Node built-ins and the externals above; an ES module has
  // no `require` of its own.
  banner: { js: "import { createRequire as __mailpollCreateRequire } from 'node:module'; const require = __mailpollCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});

cpSync(new URL('store/migrations', dist), new URL('migrations', out), { recursive: true });
