import { describe, expect, it } from 'vitest';
import { displaySubject, formatTicketToken, ticketTokenMatcher } from '../../src/tickets/subject.js';

describe('displaySubject', () => {
  it.each([
    ['Re: Printer on fire', 'Printer on fire'],
    ['RE: re: Re:Printer on fire', 'Printer on fire'],
    ['RE[2]: Printer on fire', 'Printer on fire'],
    ['Re (3): Printer on fire', 'Printer on fire'],
    ['Re^2: Printer on fire', 'Printer on fire'],
    ['Fwd: Fw: FW: Printer on fire', 'Printer on fire'],
    ['AW: WG: Drucker brennt', 'Drucker brennt'],
    ['SV: VS: VL: Skrivaren brinner', 'Skrivaren brinner'],
    ['Antw: Doorst: Printer in brand', 'Printer in brand'],
    ['TR: RV: Enc: RES: Imprimante', 'Imprimante'],
    ['Odp: PD: R: I: Rif: YNT: Stampante', 'Stampante'],
    ['Re： 打印机着火了', '打印机着火了'],
    ['Re : Imprimante en feu', 'Imprimante en feu'],
    ['  Re:   Printer on fire  ', 'Printer on fire'],
    ['Re: Fwd: AW: RE[2]: WG: [#1001] Printer on fire', '[#1001] Printer on fire'],
    ['Re: Fwd: Question: what now?', 'Question: what now?'],
  ])('%j -> %j', (subject, shown) => {
    expect(displaySubject(subject)).toBe(shown);
  });

  it.each([
    'Printer on fire',
    'Regarding: the printer',
    'Reply needed: printer',
    'Treat: printer',
    'I need help: printer',
    'Ire: a word that starts like a prefix',
    '[#1001] Re: Printer',
  ])('leaves %j as it is', (subject) => {
    expect(displaySubject(subject)).toBe(subject);
  });

  it.each([
    [undefined, ''],
    ['', ''],
    ['Re: Re: ', ''],
    ['   ', ''],
  ])('%j -> %j', (subject, shown) => {
    expect(displaySubject(subject)).toBe(shown);
  });
});

describe('ticketTokenMatcher', () => {
  const standard = ticketTokenMatcher('[#NUMBER]');

  it.each([
    ['[#1001] Printer on fire', [1001]],
    ['Re: Printer on fire [#1001]', [1001]],
    ['AW:[#7]x', [7]],
    ['[#1002] merged into [#1001], see [#1002]', [1002, 1001]],
    ['[#0] zero is a number', [0]],
  ])('finds the exact default token in %j', (subject, numbers) => {
    expect(standard(subject)).toEqual(numbers);
  });

  it.each([
    'Printer #1001 on fire',
    'Printer [1001] on fire',
    'Printer [# 1001] on fire',
    'Printer [#1001 ] on fire',
    'Printer [#1001a] on fire',
    'Printer [#01001] on fire',
    'Printer (#1001) on fire',
    'Printer [#] on fire',
    'Printer [#12345678901234567890] on fire',
    'Printer ［#1001］ on fire',
  ])('does not thread on a look-alike: %j', (subject) => {
    expect(standard(subject)).toEqual([]);
  });

  it('finds nothing in a missing subject', () => {
    expect(standard(undefined)).toEqual([]);
  });

  it.each([
    ['Re: Ticket#1001 printer', [1001]],
    ['Ticket#1001: printer', [1001]],
    ['(Ticket#1001)', [1001]],
    ['MyTicket#1001 printer', []],
    ['Ticket#1001abc printer', []],
    ['ticket#1001 printer', []],
    ['TICKET#1001 printer', []],
    ['Ticket# 1001 printer', []],
  ])('a word-like template matches whole tokens only, case-sensitively: %j', (subject, numbers) => {
    expect(ticketTokenMatcher('Ticket#NUMBER')(subject)).toEqual(numbers);
  });

  it('treats regex characters in the template literally', () => {
    const dotStar = ticketTokenMatcher('.*NUMBER');
    expect(dotStar('abc123')).toEqual([]);
    expect(dotStar('see .*42 here')).toEqual([42]);
    const parens = ticketTokenMatcher('(Case NUMBER.)');
    expect(parens('Re: (Case 42.) broken')).toEqual([42]);
    expect(parens('Re: (Case 42x) broken')).toEqual([]);
    expect(ticketTokenMatcher('REQ-NUMBER')('Re: REQ-77 again')).toEqual([77]);
    expect(ticketTokenMatcher('$NUMBER^')('a $5^ b')).toEqual([5]);
  });

  it('reads the number only when the template has digits right after NUMBER', () => {
    expect(ticketTokenMatcher('[NUMBER0]')('[120] and [1230]')).toEqual([12, 123]);
  });

  it('matches nothing for a template without NUMBER', () => {
    expect(ticketTokenMatcher('[#]')('[#] [#1001]')).toEqual([]);
  });
});

describe('formatTicketToken', () => {
  it.each([
    ['[#NUMBER]', 1001, '[#1001]'],
    ['Ticket#NUMBER', 7, 'Ticket#7'],
    ['$&NUMBER$1', 5, '$&5$1'],
  ])('%j with %d -> %j', (template, n, token) => {
    expect(formatTicketToken(template, n)).toBe(token);
  });

  it.each(['[#NUMBER]', 'Ticket#NUMBER', '(Case NUMBER.)', 'NUMBER', '.*NUMBER+'])('round-trips through the matcher for %j', (template) => {
    const subject = `Re: ${formatTicketToken(template, 4711)} printer`;
    expect(ticketTokenMatcher(template)(subject)).toEqual([4711]);
  });
});
