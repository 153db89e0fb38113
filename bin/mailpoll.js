#!/usr/bin/env node
// A cron tick with nothing due ends here, having loaded only node built-ins (see due-cache.ts).
import { nothingDueFastPath } from '../dist/cli/due-cache.js';

const code = nothingDueFastPath(process.argv.slice(2), process.env);
if (code === undefined) await import('../dist/bundle/main.js');
else process.exitCode = code;
