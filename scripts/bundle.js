// Bundles what tsc wrote to dist/ into dist/bundle/, which bin/mailpoll.js runs.
//
// Why: cron starts mailpoll every minute, and Node 20's ES module loader spends about 100 ms
// resolving, reading and linking some 460 files of our code, imapflow, zod, yaml and commander,
// one by one, before the first byte goes to the server. One file per lazily loaded piece (esbuild
// code splitting keeps every `await import()` a separate chunk) does that work once.
//
// Only better-sqlite3, a native addon, stays outside the bundle and loads from node_modules.
// mailparser comes in as its own chunk (src/parse/parser-libraries.ts), loaded by the analysis
// worker when a poll finds mail.
//
// The layout keeps every `new URL(..., import.meta.url)` of src/ right: dist/bundle/ is as deep as
// dist/cli/, the worker entries sit beside the chunks as ./analyse-worker.js and
// ./checkpoint-worker.js, and the migrations are
// copied to ./migrations/.
import { build } from 'esbuild';
import { cpSync, rmSync } from 'node:fs';

const dist = new URL('../dist/', import.meta.url);
const out = new URL('bundle/', dist);
rmSync(out, { recursive: true, force: true });

await build({
  entryPoints: ['cli/main.js', 'parse/analyse-worker.js', 'store/checkpoint-worker.js'].map((entry) => new URL(entry, dist).pathname),
  outdir: out.pathname,
  entryNames: '[name]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['better-sqlite3'],
  // Bundled CommonJS packages require() Node built-ins and better-sqlite3; an ES module has no
  // `require` of its own.
  banner: { js: "import { createRequire as __mailpollCreateRequire } from 'node:module'; const require = __mailpollCreateRequire(import.meta.url);" },
  // Linked source maps, read only by `npm run bench -- --profile` (to name the package or source
  // file a sampled frame came from) and by `node --enable-source-maps`; they chain through tsc's
  // maps back to src/.
  sourcemap: true,
  logLevel: 'warning',
});

cpSync(new URL('store/migrations', dist), new URL('migrations', out), { recursive: true });
