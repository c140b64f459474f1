// The process's open calls — EVA's `/ws` calls and Realtime WebRTC calls alike — and the one sweep timer that enforces every call's timeouts (one timer for all
// calls rather than one per call).
import type { CallEndReason, RegisteredCall } from './call.js';

export const SWEEP_MS = 100;

export class CallRegistry {
  private readonly calls = new Map<string, RegisteredCall>();
  private timer: NodeJS.Timeout | null = null;
  total = 0;

  constructor(readonly max: number) {}

  get size(): number {
    return this.calls.size;
  }

  has(id: string): boolean {
    return this.calls.has(id);
  }

  add(call: RegisteredCall): void {
    this.calls.set(call.id, call);
    this.total++;
    if (!this.timer) {
      this.timer = setInterval(() => this.sweep(), SWEEP_MS);
      this.timer.unref();
    }
  }

  remove(call: RegisteredCall): void {
    this.calls.delete(call.id);
    if (this.calls.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private sweep(): void {
    const now = performance.now();
    for (const c of [...this.calls.values()]) c.checkTimeouts(now);
  }

  closeAll(reason: CallEndReason): void {
    for (const c of [...this.calls.values()]) c.close(reason);
  }
}
