/**
 * Slows down guessing of the API key, per client address, in memory (a restart forgets, which is
 * fine: it only bounds the guessing rate). Within any `windowMs`, an address may fail `maxFailures`
 * times; each failure after the first is answered more slowly (250 ms, 500 ms, 1 s, 2 s); once at
 * the limit, the address gets 429 with Retry-After and its key is not even compared, so a
 * blocked guesser learns nothing, until its oldest failure leaves the window. Successes do not
 * reset the count: a guesser sharing an address with a legitimate client gains nothing from it.
 * Pure: the time is passed in.
 */
export interface LimiterOptions {
  maxFailures: number;
  windowMs: number;
  /** The delay before answering a failure doubles from 250 ms up to this. */
  maxDelayMs: number;
  /** Addresses remembered at most; beyond, the oldest entries are dropped. */
  maxAddresses: number;
}

export const DEFAULT_LIMITS: LimiterOptions = { maxFailures: 5, windowMs: 60_000, maxDelayMs: 2_000, maxAddresses: 10_000 };

export type Admission = { blocked: false } | { blocked: true; retryAfterMs: number };

export class FailureLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly options: LimiterOptions = DEFAULT_LIMITS) {}

  /** Whether a request from `address` may try a key now. */
  admit(address: string, now: number): Admission {
    const recent = this.recent(address, now);
    if (recent.length < this.options.maxFailures) return { blocked: false };
    const oldest = recent[recent.length - this.options.maxFailures] ?? now;
    return { blocked: true, retryAfterMs: Math.max(1, oldest + this.options.windowMs - now) };
  }

  /** Records a failed key from `address`; returns how long to wait before answering it. */
  fail(address: string, now: number): number {
    const recent = this.recent(address, now);
    recent.push(now);
    this.failures.delete(address); // re-insert: the Map's order is then least recently failed first
    this.failures.set(address, recent);
    this.prune();
    const n = recent.length;
    return n <= 1 ? 0 : Math.min(this.options.maxDelayMs, 250 * 2 ** (n - 2));
  }

  /** Addresses currently remembered (for tests). */
  get size(): number {
    return this.failures.size;
  }

  private recent(address: string, now: number): number[] {
    const list = (this.failures.get(address) ?? []).filter((t) => t > now - this.options.windowMs);
    if (list.length === 0) this.failures.delete(address);
    else this.failures.set(address, list);
    return list;
  }

  private prune(): void {
    if (this.failures.size <= this.options.maxAddresses) return;
    // Least recently failed first (see fail()): an address that failed long ago goes before one failing now.
    for (const address of this.failures.keys()) {
      if (this.failures.size <= this.options.maxAddresses) break;
      this.failures.delete(address);
    }
  }
}

/** `::ffff:127.0.0.1` (an IPv4 client on a dual-stack socket) counts as `127.0.0.1`. */
export function clientAddress(remote: string | undefined): string {
  if (remote === undefined) return 'unknown';
  return remote.startsWith('::ffff:') && remote.includes('.') ? remote.slice(7) : remote;
}
