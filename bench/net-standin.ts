// The Groq stand-in as its own process, for the network tests (test/net/two-nodes.test.ts), whose EVA nodes run in
// other network namespaces than the test: `node dist/bench/net-standin.js --host 0.0.0.0 --port 18900` prints
// {"groq":"http://HOST:PORT"} and serves until SIGTERM. Its chat answer lists every user turn of the history it was
// sent ("Turns: first | second."), so a test sees on the caller's side which history a node gave the model.
import { pathToFileURL } from 'node:url';
import { start } from './standins/groq.js';

export function historyReply(messages: readonly { role: string; content: string }[]): string {
  const turns = messages.filter((m) => m.role === 'user').map((m) => m.content.trim().replace(/[.!?]+$/, ''));
  return `Turns: ${turns.join(' | ')}.`;
}

async function main(argv: readonly string[]): Promise<void> {
  const get = (flag: string, def: string): string => {
    const i = argv.indexOf(flag);
    return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : def;
  };
  const port = Number(get('--port', '0'));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be 0-65535, got ${get('--port', '')}`);
  const groq = await start({ host: get('--host', '127.0.0.1'), port, reply: historyReply });
  process.stdout.write(`${JSON.stringify({ groq: groq.url })}\n`);
  const stop = (): void => void groq.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`net-standin: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
