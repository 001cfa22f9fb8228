import { type FileHandle, open } from "node:fs/promises";
import { GroupSync } from "../../group-sync.js";

/**
 * Makes committed SQLite transactions durable without blocking the event loop: SQLite runs with
 * `synchronous = NORMAL` (commits are written to the WAL but not fsynced), and every writer then awaits
 * a grouped fdatasync of the WAL file before its change is acknowledged.
 */
export class GroupCommit {
  private handle: FileHandle | undefined;
  private readonly group = new GroupSync(async () => {
    this.handle ??= await open(this.walPath, "r");
    await this.handle.datasync();
  });

  constructor(private readonly walPath: string) {}

  /** Resolves once everything committed before the call is on disk. */
  durable(): Promise<void> {
    return this.group.sync();
  }

  async close(): Promise<void> {
    await this.group.settle();
    await this.handle?.close();
    this.handle = undefined;
  }
}
