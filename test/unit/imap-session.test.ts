import { describe, expect, it } from 'vitest';
import { LARGE_MESSAGE_BYTES, type Candidate } from '../../src/sources/mail-source.js';
import { ackCommands, byTransfer, uidSet } from '../../src/sources/imap.js';

const candidate = (uid: number, size = 1000): Candidate => ({ serverId: `7:${uid}`, uid, size });

describe('IMAP acknowledgement commands', () => {
  const both = { move: true, uidplus: true };
  const neither = { move: false, uidplus: false };

  it('seen is one silent STORE', () => {
    expect(ackCommands('seen', '1:3', neither, '')).toEqual([{ line: 'UID STORE 1:3 +FLAGS.SILENT (\\Seen)', label: 'STORE' }]);
  });

  it('delete expunges exactly the range with UIDPLUS, the folder without it', () => {
    expect(ackCommands('delete', '4,6', both, '').map((c) => c.line)).toEqual(['UID STORE 4,6 +FLAGS.SILENT (\\Deleted)', 'UID EXPUNGE 4,6']);
    expect(ackCommands('delete', '4,6', neither, '').map((c) => c.line)).toEqual(['UID STORE 4,6 +FLAGS.SILENT (\\Deleted)', 'EXPUNGE']);
  });

  it('move is UID MOVE where the server has it, else copy and delete', () => {
    expect(ackCommands('move', '9', both, '"Done"').map((c) => c.line)).toEqual(['UID MOVE 9 "Done"']);
    expect(ackCommands('move', '9', { move: false, uidplus: true }, '"Done"').map((c) => c.line))
      .toEqual(['UID COPY 9 "Done"', 'UID STORE 9 +FLAGS.SILENT (\\Deleted)', 'UID EXPUNGE 9']);
  });
});

describe('IMAP fetch sets', () => {
  it('writes consecutive UIDs as ranges, in order', () => {
    expect(uidSet([5, 1, 2, 3, 9, 12, 13].map((u) => candidate(u)))).toBe('1:3,5,9,12:13');
    expect(uidSet([candidate(4)])).toBe('4');
  });

  it('keeps small messages together and each large one alone, in the given order', () => {
    const large = LARGE_MESSAGE_BYTES + 1;
    const runs = byTransfer([candidate(1), candidate(2, large), candidate(3), candidate(4), candidate(5, large), candidate(6, large)]);
    expect(runs.map((r) => [r.large, r.candidates.map((c) => c.uid)])).toEqual([
      [false, [1]], [true, [2]], [false, [3, 4]], [true, [5]], [true, [6]],
    ]);
  });
});
