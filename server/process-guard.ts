// What keeps one bug from ending every call: a promise rejection nobody handled is logged and counted
// (eva_unhandled_rejections_total), never fatal. Node's default since v15 is to exit the process on the first one,
// which would drop every call on the box for a fault in one of them. main.ts installs it once, before anything else.
import type { Logger } from './log.js';

export interface ProcessGuardOptions {
  log: Logger;
  /** Called once per unhandled rejection (main.ts counts it in the metrics once they exist). */
  onRejection?: () => void;
}

/** Install the handler; returns its removal. */
export function guardProcess(opts: ProcessGuardOptions): () => void {
  const onRejection = (reason: unknown): void => {
    const err = reason instanceof Error ? { message: reason.message, stack: reason.stack?.split('\n').slice(0, 8).join('\n') } : String(reason);
    opts.log.error('unhandled promise rejection (survived; please report it)', { err });
    try {
      opts.onRejection?.();
    } catch {
      // counting must never be what fails
    }
  };
  process.on('unhandledRejection', onRejection);
  return () => process.off('unhandledRejection', onRejection);
}
