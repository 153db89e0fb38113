/**
 * Reply and forward prefixes that mail clients put before a subject, in the languages we meet:
 * Re, Fwd/Fw (English); AW, WG (German); SV (Scandinavian reply), VS (Danish/Norwegian forward,
 * Finnish reply), VL (Finnish forward); Antw, Doorst (Dutch); TR (French forward); RV (Spanish
 * forward); RES, Enc (Portuguese); R, I, Rif (Italian); Odp, PD (Polish); YNT (Turkish).
 */
const PREFIXES = ['re', 'fwd', 'fw', 'aw', 'wg', 'sv', 'vs', 'vl', 'antw', 'doorst', 'tr', 'rv', 'res', 'enc', 'rif', 'r', 'i', 'odp', 'pd', 'ynt'];

/** One prefix with an optional counter (`RE[2]`, `Re(3)`, `Re^2`) and a colon, ASCII or full-width. */
const PREFIX = new RegExp(`^\\s*(?:${PREFIXES.join('|')})(?:\\s*\\[\\d+\\]|\\s*\\(\\d+\\)|\\^\\d+)?\\s*[:：]`, 'i');

/**
 * The subject without its reply/forward prefixes, for display: `RE[2]: AW: Fwd: Printer` ->
 * `Printer`. The rest, ticket token included, is left as it is. '' when nothing else is left.
 */
export function displaySubject(subject: string | undefined): string {
  let rest = subject ?? '';
  for (let match = PREFIX.exec(rest); match !== null; match = PREFIX.exec(rest)) rest = rest.slice(match[0].length);
  return rest.trim();
}

/**
 * Compiles a ticket token template such as '[#NUMBER]' (the default) or 'Ticket#NUMBER' into a
 * matcher returning the ticket numbers in a subject, first one first, each once. Only the exact
 * token threads: the template's other characters are literal and case-sensitive, the number has
 * no leading zero (we never write one), and a template that starts or ends with a letter or digit
 * does not match inside a longer word. So `#1001` or `[1001]` never thread for '[#NUMBER]'.
 * A template without NUMBER (the config schema refuses one) matches nothing.
 */
export function ticketTokenMatcher(template: string): (subject: string | undefined) => number[] {
  const at = template.indexOf('NUMBER');
  if (at === -1) return () => [];
  const before = template.slice(0, at);
  const after = template.slice(at + 'NUMBER'.length);
  const wordy = /[\p{L}\p{N}_]/u;
  const lead = before === '' || wordy.test(before[0] ?? '') ? '(?<![\\p{L}\\p{N}_])' : '';
  const trail = after === '' || wordy.test(after[after.length - 1] ?? '') ? '(?![\\p{L}\\p{N}_])' : '';
  // The number ends where the digits end, unless the template itself goes on with a digit.
  const stop = /^\d/.test(after) ? '' : '(?!\\d)';
  const token = new RegExp(`${lead}${escapeRegExp(before)}(0|[1-9]\\d{0,14})${stop}${escapeRegExp(after)}${trail}`, 'gu');
  return (subject) => {
    const numbers: number[] = [];
    for (const match of (subject ?? '').matchAll(token)) {
      const n = Number(match[1]);
      if (!numbers.includes(n)) numbers.push(n);
    }
    return numbers;
  };
}

/** The token for a ticket, as put into the subject of mail about it: `[#1001]`. */
export function formatTicketToken(template: string, ticketNumber: number): string {
  const at = template.indexOf('NUMBER');
  if (at === -1) return template;
  return `${template.slice(0, at)}${ticketNumber}${template.slice(at + 'NUMBER'.length)}`;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
