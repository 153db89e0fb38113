// tsc compiles only .ts; the migrations are plain .sql files read at run time.
import { cpSync } from 'node:fs';
cpSync(new URL('../src/store/migrations', import.meta.url), new URL('../dist/store/migrations', import.meta.url), { recursive: true });
