// What keeps one bug from ending every call: a promise rejection nobody handled is logged and counted
// (eva_unhandled_rejections_total), never fatal. Node's default since v15 is to exit the process on the first one,
// which would drop every call on the box for a fault in one of them. main.ts installs it once, before anything else.
// An exception nobody caught is different: the process's state is unknown, so it still ends (exit code 1; the
// supervisor starts a new worker), but first each of its calls is told why (`bye {reason:"error"}`), which a
// crash otherwise never says: the socket just closes (guardFatal).
import type { Logger } from './log.js';

export interface ProcessGuardOptions {
  log: Logger;
  /** Called once per unhandled rejection (main.ts counts it in the metrics once they exist). */
  onRejection?: () => void;
}

/** Install the handler; returns its removal. */
/** What a log line says of a thrown value: an Error's message and the top of its stack, anything else as text. */
function errFields(reason: unknown): { message: string; stack?: string } | string {
  return reason instanceof Error ? { message: reason.message, stack: reason.stack?.split('\n').slice(0, 8).join('\n') } : String(reason);
}

export function guardProcess(opts: ProcessGuardOptions): () => void {
  const onRejection = (reason: unknown): void => {
    opts.log.error('unhandled promise rejection (survived; please report it)', { err: errFields(reason) });
    try {
      opts.onRejection?.();
    } catch {
      // counting must never be what fails
    }
  };
  process.on('unhandledRejection', onRejection);
  return () => process.off('unhandledRejection', onRejection);
}

export interface FatalGuardOptions {
  log: Logger;
  /** Ends every call (synchronously: each sends its `bye`). Called once; a throw in it is logged. */
  endCalls: () => void;
  /** How long the byes get to reach the sockets before the process exits. */
  flushMs: number;
}

/**
 * An uncaught exception ends the process with exit code 1 as Node's default does, after logging it and ending
 * every call. A second one while the byes flush exits at once. Returns the handler's removal.
 */
export function guardFatal(opts: FatalGuardOptions): () => void {
  let fatal = false;
  const onException = (err: unknown, origin: string): void => {
    if (fatal) {
      opts.log.error('another uncaught exception while ending the calls: exiting now', { err: errFields(err), origin });
      process.exit(1);
    }
    fatal = true;
    opts.log.error('uncaught exception: ending every call and exiting (please report it)', { err: errFields(err), origin });
    try {
      opts.endCalls();
    } catch (e) {
      opts.log.error('ending the calls failed', { err: errFields(e) });
    }
    setTimeout(() => process.exit(1), opts.flushMs);
  };
  process.on('uncaughtException', onException);
  return () => process.off('uncaughtException', onException);
}
