// EVA's entry point: `node dist/server/main.js [--port 8080] [--eva-llm groq,ollama] …` (flags = env names).
import { fileURLToPath } from 'node:url';
import { startServer } from './app.js';
import { loadConfig } from './config.js';
import { EvaError } from './errors.js';
import { createLogger } from './log.js';
import { guardProcess } from './process-guard.js';
import { loadSecret } from './http/tokens.js';
import { createRuntime, type Runtime } from './runtime.js';
import { VadEngine } from '../media/vad.js';

const log = createLogger('eva');

// A rejection nobody handled is logged and counted (eva_unhandled_rejections_total), never fatal.
let countRejection = (): void => {};
guardProcess({ log, onRejection: () => countRejection() });

async function main(): Promise<void> {
  let config;
  let runtime: Runtime;
  try {
    config = loadConfig(process.env, process.argv.slice(2));
    runtime = await createRuntime(config, { log });
  } catch (err) {
    if (err instanceof EvaError) {
      process.stderr.write(`eva: configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  for (const w of config.warnings) log.warn(w);
  if ((config.host === '0.0.0.0' || config.host === '::') && !config.access.apiKey) {
    log.warn('EVA listens on every interface with no EVA_API_KEY: anyone who can reach the port can use it (docs/security.md)');
  }
  countRejection = () => runtime.metrics.unhandledRejection();
  const vad = await VadEngine.create();
  vad.onReset((e) => {
    log.warn('VAD worker replaced: every call\'s VAD state was reset', { reason: e.cause.message });
    runtime.metrics.workerRestart('vad');
  });
  const server = await startServer({
    config,
    vad,
    agent: runtime.agent,
    log,
    clientDir: fileURLToPath(new URL('../client/', import.meta.url)),
    text: runtime.text,
    tts: runtime.tts,
    metrics: runtime.metrics,
    limiter: runtime.limiter,
    health: () => runtime.health(),
    secret: loadSecret(config.dataDir),
  });
  const url = `http://${config.host}:${server.port}`;
  process.stdout.write(`EVA listening on ${url}  (stt: ${runtime.chosen.stt}, llm: ${runtime.chosen.llm}, tts: ${runtime.chosen.tts}; data: ${runtime.store.path})\n`);
  if (runtime.chosen.stt === 'none') {
    process.stdout.write('  no speech-to-text configured: voice turns are echoed back; set GROQ_API_KEY or EVA_STT_URL for conversations\n');
  }
  log.info('ready', { url, ...runtime.chosen });

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal, calls: server.calls.size });
    void server.close().then(() => runtime.close()).then(() => vad.close()).then(() => process.exit(0));
    setTimeout(() => process.exit(1), 3000).unref();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err: unknown) => {
  process.stderr.write(`eva: failed to start: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
