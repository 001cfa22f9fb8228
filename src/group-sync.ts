/**
 * Group commit for disk flushes: callers that need "everything I wrote so far is on disk" share flushes.
 * A caller arriving while a flush runs waits for the next one (its write may have missed the running
 * one); every caller arriving before that next flush starts shares it. N concurrent writers cost about
 * two flushes instead of N, and the flushes run on libuv's thread pool, never on the event loop.
 */
export class GroupSync {
  private current: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(private readonly flush: () => Promise<void>) {}

  /** Resolves once a flush that started after this call has finished. */
  sync(): Promise<void> {
    if (this.next) return this.next;
    const previous = this.current ?? Promise.resolve();
    // The flush starts in a later tick, so every write made before it starts is covered by it.
    const next: Promise<void> = previous
      .catch(() => undefined)
      .then(() => {
        if (this.next === next) this.next = undefined;
        const run = this.flush();
        this.current = run;
        return run.finally(() => {
          if (this.current === run) this.current = undefined;
        });
      });
    this.next = next;
    return next;
  }

  /** Waits for a flush in progress, if any. */
  async settle(): Promise<void> {
    await this.next?.catch(() => undefined);
    await this.current?.catch(() => undefined);
  }
}
