// A tiny leveled logger: one line per event on stderr, fields as JSON. EVA_LOG_LEVEL=debug|info|warn|error|silent.
// Every line goes through `redactSecrets` first, so an upstream error that quotes a key never lands in a log.

export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level | 'silent', number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(name: string): Logger;
}

/**
 * Things shaped like credentials: Groq (`gsk_…`) and OpenAI-style (`sk-…`) keys, `Bearer`/`Basic` values, EVA's
 * own tokens (`eva-token.…`, `eva_<port>=…` cookies) and `api_key=…`-style pairs. Each becomes `[redacted]`.
 */
const SECRETS: [RegExp, string][] = [
  [/\bgsk_[A-Za-z0-9]{8,}/g, '[redacted]'],
  [/\bsk-[A-Za-z0-9_-]{8,}/g, '[redacted]'],
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{4,}/gi, '$1 [redacted]'],
  [/\beva-token\.[A-Za-z0-9_-]+/g, 'eva-token.[redacted]'],
  [/\b(eva_\d+)=[A-Za-z0-9_-]+/g, '$1=[redacted]'],
  [/\b((?:api[_-]?key|apikey|token|password|secret)["']?\s*[:=]\s*["']?)[^\s"',;&}]{4,}/gi, '$1[redacted]'],
];

export function redactSecrets(text: string): string {
  let out = text;
  for (const [re, to] of SECRETS) out = out.replace(re, to);
  return out;
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
    process.stderr.write(redactSecrets(`${new Date().toISOString()} ${level.padEnd(5)} ${name}: ${msg}${extra}\n`));
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (sub) => createLogger(`${name}.${sub}`),
  };
}
