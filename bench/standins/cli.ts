// Run the stand-ins by hand:
//   node dist/bench/standins/cli.js --groq-port 0 --ollama-port 0 --profile groq
// prints {"groq":"http://127.0.0.1:P","openai":"http://127.0.0.1:P/openai/v1","ollama":"http://127.0.0.1:Q"} on one
// line, then serves until SIGINT/SIGTERM. Point EVA at them with GROQ_BASE_URL, OLLAMA_HOST, EVA_STT_URL, EVA_TTS_URL.
import { pathToFileURL } from 'node:url';
import { start as startGroq, type GroqStandin } from './groq.js';
import { start as startOllama, type OllamaStandin } from './ollama.js';
import { parseProfile } from './profile.js';

const USAGE = 'usage: cli.js [--groq-port N|off] [--ollama-port N|off] [--host 127.0.0.1] [--profile groq,ttftMs=200] [--ollama-profile ollama-gpu] [--transcript TEXT]';

export interface CliOptions {
  host: string;
  groqPort: number | null;
  ollamaPort: number | null;
  profile: string;
  ollamaProfile: string;
  transcript?: string;
}

export function parseArgs(argv: readonly string[]): CliOptions {
  const o: CliOptions = { host: '127.0.0.1', groqPort: 0, ollamaPort: 0, profile: 'instant', ollamaProfile: '' };
  const port = (name: string, v: string): number | null => {
    if (v === 'off') return null;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`${name} must be a port (0-65535) or off, got ${JSON.stringify(v)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i]!;
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${flag} needs a value\n${USAGE}`);
    switch (flag) {
      case '--groq-port': o.groqPort = port(flag, v); break;
      case '--ollama-port': o.ollamaPort = port(flag, v); break;
      case '--host': o.host = v; break;
      case '--profile': parseProfile(v); o.profile = v; break;
      case '--ollama-profile': parseProfile(v); o.ollamaProfile = v; break;
      case '--transcript': o.transcript = v; break;
      default: throw new Error(`unknown flag ${JSON.stringify(flag)}\n${USAGE}`);
    }
  }
  return o;
}

export async function main(argv: readonly string[]): Promise<void> {
  const o = parseArgs(argv);
  let groq: GroqStandin | null = null;
  let ollama: OllamaStandin | null = null;
  if (o.groqPort !== null) groq = await startGroq({ host: o.host, port: o.groqPort, profile: o.profile, transcript: o.transcript });
  if (o.ollamaPort !== null) ollama = await startOllama({ host: o.host, port: o.ollamaPort, profile: o.ollamaProfile || o.profile });
  process.stdout.write(JSON.stringify({ groq: groq?.url ?? null, openai: groq?.openaiUrl ?? null, ollama: ollama?.url ?? null }) + '\n');
  const stop = (): void => {
    void Promise.all([groq?.close(), ollama?.close()]).then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(2);
  });
}
