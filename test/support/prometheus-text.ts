/**
 * A small, strict parser for the Prometheus text exposition format 0.0.4, written from the spec
 * (https://prometheus.io/docs/instrumenting/exposition_formats/) independently of the code under
 * test. Strict where Prometheus is lenient: every line ends with "\n", no blank lines, no comments
 * other than HELP and TYPE, HELP and TYPE before the family's samples and at most once, a family's
 * samples contiguous, no series twice, label values with only \\ \" \n escapes.
 */
export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
  timestamp: number | undefined;
}

export interface ParsedFamily {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help: string | undefined;
  samples: ParsedSample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*';

export class PromParseError extends Error {}

export function parsePrometheusText(text: string): Map<string, ParsedFamily> {
  if (text.length > 0 && !text.endsWith('\n')) throw new PromParseError('the text does not end with a line feed (truncated?)');
  const families = new Map<string, ParsedFamily>();
  const closed = new Set<string>();
  const series = new Set<string>();
  let current: ParsedFamily | undefined;
  const lines = text.length === 0 ? [] : text.slice(0, -1).split('\n');
  const family = (name: string, lineNo: number): ParsedFamily => {
    if (current?.name === name) return current;
    if (closed.has(name) || families.has(name)) throw new PromParseError(`line ${lineNo}: family ${name} is not contiguous`);
    if (current !== undefined) closed.add(current.name);
    current = { name, type: 'untyped', help: undefined, samples: [] };
    families.set(name, current);
    return current;
  };
  lines.forEach((line, i) => {
    const lineNo = i + 1;
    if (line === '') throw new PromParseError(`line ${lineNo}: blank line`);
    if (line.startsWith('#')) {
      const m = new RegExp(`^# (HELP|TYPE) (${NAME})(?: (.*))?$`).exec(line);
      if (m === null) throw new PromParseError(`line ${lineNo}: a comment other than HELP or TYPE: ${line}`);
      const [, kind, name, rest] = m as unknown as [string, 'HELP' | 'TYPE', string, string | undefined];
      const f = family(name, lineNo);
      if (f.samples.length > 0) throw new PromParseError(`line ${lineNo}: ${kind} after samples of ${name}`);
      if (kind === 'HELP') {
        if (f.help !== undefined) throw new PromParseError(`line ${lineNo}: second HELP for ${name}`);
        f.help = unescapeHelp(rest ?? '', lineNo);
      } else {
        if ((f as { typed?: boolean }).typed) throw new PromParseError(`line ${lineNo}: second TYPE for ${name}`);
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest ?? '')) throw new PromParseError(`line ${lineNo}: bad type ${rest}`);
        f.type = rest as ParsedFamily['type'];
        (f as { typed?: boolean }).typed = true;
      }
      return;
    }
    const sample = parseSample(line, lineNo);
    let familyName = sample.name;
    if (current !== undefined && (current.type === 'histogram' || current.type === 'summary')) {
      const base = sample.name.replace(/_(bucket|sum|count)$/, '');
      if (base === current.name) familyName = base;
    }
    const f = family(familyName, lineNo);
    const key = `${sample.name}{${Object.entries(sample.labels).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}}`;
    if (series.has(key)) throw new PromParseError(`line ${lineNo}: series ${key} appears twice`);
    series.add(key);
    f.samples.push(sample);
  });
  for (const f of families.values()) delete (f as { typed?: boolean }).typed;
  return families;
}

function parseSample(line: string, lineNo: number): ParsedSample {
  const head = new RegExp(`^(${NAME})`).exec(line);
  if (head === null) throw new PromParseError(`line ${lineNo}: no metric name: ${line}`);
  const name = head[1] as string;
  let pos = name.length;
  const labels: Record<string, string> = {};
  if (line[pos] === '{') {
    pos += 1;
    while (line[pos] !== '}') {
      const l = new RegExp(`^(${LABEL})="`).exec(line.slice(pos));
      if (l === null) throw new PromParseError(`line ${lineNo}: bad label at column ${pos + 1}: ${line}`);
      const labelName = l[1] as string;
      if (labelName in labels) throw new PromParseError(`line ${lineNo}: label ${labelName} twice`);
      pos += l[0].length;
      let value = '';
      for (;;) {
        const c = line[pos];
        if (c === undefined) throw new PromParseError(`line ${lineNo}: unterminated label value`);
        if (c === '"') break;
        if (c === '\\') {
          const e = line[pos + 1];
          if (e === '\\') value += '\\';
          else if (e === '"') value += '"';
          else if (e === 'n') value += '\n';
          else throw new PromParseError(`line ${lineNo}: bad escape \\${e ?? ''} in a label value`);
          pos += 2;
          continue;
        }
        value += c;
        pos += 1;
      }
      pos += 1; // closing quote
      labels[labelName] = value;
      if (line[pos] === ',') pos += 1;
      else if (line[pos] !== '}') throw new PromParseError(`line ${lineNo}: expected , or } at column ${pos + 1}`);
    }
    pos += 1;
  }
  const rest = line.slice(pos);
  const m = /^ (\S+)(?: (-?\d+))?$/.exec(rest);
  if (m === null) throw new PromParseError(`line ${lineNo}: expected " VALUE [TIMESTAMP]" after the series: ${line}`);
  return { name, labels, value: parseValue(m[1] as string, lineNo), timestamp: m[2] === undefined ? undefined : Number(m[2]) };
}

function parseValue(text: string, lineNo: number): number {
  if (text === 'NaN') return Number.NaN;
  if (text === '+Inf' || text === 'Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (!/^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/.test(text)) throw new PromParseError(`line ${lineNo}: bad value ${text}`);
  return Number(text);
}

function unescapeHelp(text: string, lineNo: number): string {
  return text.replace(/\\(.?)/g, (_, e: string) => {
    if (e === '\\') return '\\';
    if (e === 'n') return '\n';
    throw new PromParseError(`line ${lineNo}: bad escape \\${e} in HELP`);
  });
}

/** The value of one series (`labels` must match exactly), or undefined. */
export function sampleValue(families: Map<string, ParsedFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  const f = families.get(name);
  const want = JSON.stringify(Object.entries(labels).sort());
  return f?.samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want)?.value;
}
