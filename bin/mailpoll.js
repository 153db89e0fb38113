#!/usr/bin/env node
// A cron tick with nothing due ends here, having loaded only node built-ins (see due-cache.ts).
import { nothingDueFastPath } from '../dist/cli/due-cache.js';

const code = nothingDueFastPath(process.argv.slice(2), process.env);
if (code === undefined) {
  // A fetch is a short, busy process. With V8's default tier-up budget its optimising compiler
  // spends about 0.9 s of CPU on a 2 s run of 1000 messages, on helper threads that compete with
  // the fetch and the parser for the same cores; eight times the budget cuts that to a third and
  // leaves the truly hot functions to optimise (`npm run bench`, IMAPS: about 5-10 % faster). A
  // daemon reaches the same optimised code a little later. V8 flags are per process, so the
  // analysis worker gets the same budget.
  const { setFlagsFromString } = await import('node:v8');
  setFlagsFromString('--interrupt-budget=540672');
  await import('../dist/bundle/main.js');
} else {
  process.exitCode = code;
}
