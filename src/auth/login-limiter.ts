/**
 * Failed logins per client address, in fixed windows: past the limit, that address is refused
 * (429 with Retry-After) until its window ends, correct credentials included.
 */
export class LoginLimiter {
  private readonly windows = new Map<string, { started: number; failures: number }>();

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds until the address may try again, or undefined when it may try now. */
  retryAfter(address: string): number | undefined {
    if (this.limit === 0) return undefined;
    const window = this.windows.get(address);
    if (!window) return undefined;
    const remaining = window.started + this.windowMs - this.now();
    if (remaining <= 0) {
      this.windows.delete(address);
      return undefined;
    }
    return window.failures >= this.limit ? Math.ceil(remaining / 1000) : undefined;
  }

  recordFailure(address: string): void {
    if (this.limit === 0) return;
    const now = this.now();
    const window = this.windows.get(address);
    if (!window || now - window.started >= this.windowMs) {
      this.windows.set(address, { started: now, failures: 1 });
      if (this.windows.size > 100_000) this.prune();
      return;
    }
    window.failures++;
  }

  private prune(): void {
    const now = this.now();
    for (const [address, window] of this.windows) {
      if (now - window.started >= this.windowMs) this.windows.delete(address);
    }
  }
}
