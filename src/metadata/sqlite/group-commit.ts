import { type FileHandle, open } from "node:fs/promises";

/**
 * Makes committed SQLite transactions durable without blocking the event loop: SQLite runs with
 * `synchronous = NORMAL` (commits are written to the WAL but not fsynced), and every writer then awaits
 * an fdatasync of the WAL file on libuv's thread pool before its change is acknowledged. Writers that
 * commit while a sync is running share the next one (group commit), so N concurrent pushes cost far
 * fewer than N disk flushes, and none of them stalls readers.
 */
export class GroupCommit {
  private current: Promise<void> | undefined;
  private next: Promise<void> | undefined;
  private handle: FileHandle | undefined;

  constructor(private readonly walPath: string) {}

  /** Resolves once everything committed before the call is on disk. */
  durable(): Promise<void> {
    if (this.next) return this.next;
    const previous = this.current ?? Promise.resolve();
    // The sync starts in a later tick, so every commit made before it starts is covered by it.
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

  private async flush(): Promise<void> {
    this.handle ??= await open(this.walPath, "r");
    await this.handle.datasync();
  }

  async close(): Promise<void> {
    await this.current?.catch(() => undefined);
    await this.handle?.close();
    this.handle = undefined;
  }
}
