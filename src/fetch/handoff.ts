/**
 * The hand-off between the network side of a poll and its store side: a FIFO with a byte budget.
 * The producer waits when the budget is used up (so a fast server cannot fill memory while
 * SQLite catches up); the consumer takes whatever has arrived, at least one item.
 */
export class Handoff<T> {
  private readonly items: { item: T; bytes: number }[] = [];
  private bytes = 0;
  private ended = false;
  private cancelled = false;
  private wakeConsumer: (() => void) | undefined;
  private wakeProducer: (() => void) | undefined;

  constructor(private readonly budgetBytes: number) {}

  /** Adds an item; waits while the budget is exceeded (an item larger than the budget still passes alone). */
  async put(item: T, bytes: number): Promise<void> {
    while (!this.cancelled && this.bytes > 0 && this.bytes + bytes > this.budgetBytes) {
      await new Promise<void>((resolve) => (this.wakeProducer = resolve));
    }
    if (this.cancelled) throw new Error('the store side stopped');
    this.items.push({ item, bytes });
    this.bytes += bytes;
    this.wakeConsumer?.();
  }

  /** No more items will come. */
  end(): void {
    this.ended = true;
    this.wakeConsumer?.();
  }

  /** The consumer gave up: a waiting or later put() throws, so the producer stops. */
  cancel(): void {
    this.cancelled = true;
    this.wakeProducer?.();
  }

  /** Up to `max` items / `maxBytes` in arrival order (at least one); [] once ended and drained. */
  async take(max: number, maxBytes: number): Promise<T[]> {
    while (this.items.length === 0 && !this.ended) {
      await new Promise<void>((resolve) => (this.wakeConsumer = resolve));
    }
    const out: T[] = [];
    let taken = 0;
    while (this.items.length > 0 && out.length < max && (out.length === 0 || taken + (this.items[0]?.bytes ?? 0) <= maxBytes)) {
      const next = this.items.shift() as { item: T; bytes: number };
      out.push(next.item);
      taken += next.bytes;
      this.bytes -= next.bytes;
    }
    this.wakeProducer?.();
    return out;
  }
}
