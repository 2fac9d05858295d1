// Pending reports persisted in localStorage (write-ahead: a report is stored
// before it is sent and removed once the collector accepted or permanently
// rejected it). Bounded: at most MAX_REPORTS entries and MAX_BYTES of JSON,
// oldest dropped first.
import type { SendResult } from './deliver';

export const QUEUE_KEY = 'arubug:pending';
export const MAX_REPORTS = 10;
export const MAX_BYTES = 1_000_000; // characters of JSON: room for one report with a full-size screenshot

export interface Pending { uuid: string; url: string; body: string }
export interface StorageLike { getItem(k: string): string | null; setItem(k: string, v: string): void; removeItem(k: string): void }

export class Queue {
  private flushing: Promise<void> | null = null;
  constructor(private storage: StorageLike | null | undefined, private key = QUEUE_KEY) {}

  list(): Pending[] {
    try {
      const v = this.storage && this.storage.getItem(this.key);
      const a = v ? JSON.parse(v) : [];
      return Array.isArray(a) ? a : [];
    } catch {
      return [];
    }
  }

  private save(items: Pending[]): void {
    if (!this.storage) return;
    items = items.slice(-MAX_REPORTS);
    let s = JSON.stringify(items);
    while (items.length && s.length > MAX_BYTES) {
      items.shift();
      s = JSON.stringify(items);
    }
    try {
      if (items.length) this.storage.setItem(this.key, s);
      else this.storage.removeItem(this.key);
    } catch {
      // Quota: drop the oldest until it fits.
      if (items.length > 1) this.save(items.slice(1));
    }
  }

  add(p: Pending): void {
    this.save(this.list().filter((x) => x.uuid !== p.uuid).concat(p));
  }

  remove(uuid: string): void {
    this.save(this.list().filter((x) => x.uuid !== uuid));
  }

  /**
   * Send every pending report once (oldest first); concurrent calls share one
   * run, so `online` + load never send the same report twice at once.
   * Entries that are accepted or permanently rejected are removed; the first
   * retryable failure stops the run (the rest stay queued).
   */
  flush(send: (p: Pending) => Promise<SendResult>, skip: (uuid: string) => boolean = () => false): Promise<void> {
    if (this.flushing) return this.flushing;
    const run = async () => {
      for (const p of this.list()) {
        if (skip(p.uuid)) continue;
        const r = await send(p);
        if (r.ok || r.permanent) this.remove(p.uuid);
        else break;
      }
    };
    this.flushing = run().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }
}
