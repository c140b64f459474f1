// A tiny leveled logger: one line per event on stderr, fields as JSON. EVA_LOG_LEVEL=debug|info|warn|error|silent.

export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level | 'silent', number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(name: string): Logger;
}

function threshold(): number {
  const v = (process.env.EVA_LOG_LEVEL ?? 'info').toLowerCase() as Level | 'silent';
  return ORDER[v] ?? ORDER.info;
}

export function createLogger(name: string): Logger {
  const min = threshold();
  const write = (level: Level, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[level] < min) return;
    let extra = '';
    if (fields) {
      try {
        extra = ' ' + JSON.stringify(fields, (_k, v: unknown) => (v instanceof Error ? { message: v.message, code: (v as { code?: unknown }).code } : v));
      } catch {
        extra = ' [unserializable fields]';
      }
    }
    process.stderr.write(`${new Date().toISOString()} ${level.padEnd(5)} ${name}: ${msg}${extra}\n`);
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (sub) => createLogger(`${name}.${sub}`),
  };
}
