// The real servers the network tests start inside a lab's namespaces (test/helpers/netns.ts): EVA itself (the built
// dist/server/main.js), coturn (Debian `coturn`) and HAProxy (Debian `haproxy`), each with its own config file in a
// temporary directory, in the foreground, stopped with the lab. And the caller (dist/bench/net-caller.js).
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LabProcess, NetLab } from '../helpers/netns.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'dist/server/main.js');
const CALLER = join(ROOT, 'dist/bench/net-caller.js');
/** VAD model load and JIT on a loaded 2-core machine; a healthy start takes ~1-2 s. */
const START_TIMEOUT_MS = 30_000;
/** The developer's provider settings stay out of the nodes (as test/helpers/server.ts does); EVA_LOG_LEVEL stays. */
const INHERITED_CONFIG = /^(EVA_(?!LOG_LEVEL$)|GROQ_|OLLAMA_|PORT$|HOST$)/;

interface TapLike {
  teardown(fn: () => unknown): void;
}

export function requireBuilt(): void {
  for (const f of [MAIN, CALLER]) if (!existsSync(f)) throw new Error(`${f} does not exist: run \`npm run build\` first`);
}

async function tempDir(t: TapLike, what: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `eva-${what}-`));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export interface EvaNode {
  process: LabProcess;
  /** `http://<address>:<port>` */
  url: string;
}

/** EVA in `ns`, listening on `address:port`, offering `address` as its media host candidate. */
export async function startEvaIn(t: TapLike, lab: NetLab, ns: string, name: string, address: string, env: Record<string, string> = {}, port = 8080): Promise<EvaNode> {
  const dataDir = await tempDir(t, 'data');
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !INHERITED_CONFIG.test(k)));
  const p = lab.spawn(ns, name, process.execPath, [MAIN], {
    cwd: ROOT,
    env: {
      ...inherited,
      PORT: String(port),
      HOST: address,
      EVA_ICE_HOSTS: address,
      EVA_WORKERS: '1',
      EVA_DATA_DIR: dataDir,
      EVA_LLM: 'echo',
      EVA_LOG_LEVEL: 'info',
      EVA_EXIT_ON_STDIN_CLOSE: '1',
      ...env,
    },
  });
  await p.waitFor(/EVA listening on (http:\/\/\S+)/, START_TIMEOUT_MS);
  return { process: p, url: `http://${address}:${port}` };
}

export interface Coturn {
  process: LabProcess;
  /** The TURN URL for EVA_ICE_SERVERS (UDP). */
  url: string;
}

/**
 * coturn with the REST API's shared secret (`use-auth-secret`), listening on `listen` only, relaying from
 * `relayIp` with a small port range. `verbose` logs each allocation and its traffic (the test reads them).
 */
export async function startCoturn(t: TapLike, lab: NetLab, ns: string, o: { listen: string; relayIp: string; secret: string; port?: number; minPort?: number; maxPort?: number }): Promise<Coturn> {
  const dir = await tempDir(t, 'coturn');
  const port = o.port ?? 3478;
  const conf = [
    `listening-ip=${o.listen}`,
    `listening-port=${port}`,
    `relay-ip=${o.relayIp}`,
    `min-port=${o.minPort ?? 49160}`,
    `max-port=${o.maxPort ?? 49200}`,
    'use-auth-secret',
    `static-auth-secret=${o.secret}`,
    'realm=eva.test',
    'fingerprint',
    'no-cli',
    'no-tls',
    'no-dtls',
    'no-multicast-peers',
    'no-software-attribute',
    'log-file=stdout',
    'simple-log',
    'verbose',
    `pidfile=${join(dir, 'turnserver.pid')}`,
    `userdb=${join(dir, 'turndb')}`,
    '',
  ].join('\n');
  const file = join(dir, 'turnserver.conf');
  await writeFile(file, conf);
  const p = lab.spawn(ns, 'coturn', 'turnserver', ['-c', file, '--no-cli']);
  await p.waitFor(new RegExp(`UDP listener opened on\\s*:\\s*${o.listen.replace(/\./g, '\\.')}:${port}`), START_TIMEOUT_MS);
  return { process: p, url: `turn:${o.listen}:${port}?transport=udp` };
}

export interface HaproxyBackend {
  name: string;
  address: string;
  port: number;
}

/**
 * The load balancer in front of EVA (docs/deploy.md shows this config): HTTP mode so it adds X-Forwarded-For,
 * WebSocket upgrades kept open by `timeout tunnel`, health checks on /health, and a connection that fails
 * retried on another node (`option redispatch`). `?node=<name>` pins a request to one node while it is up.
 */
export function haproxyConfig(bind: string, backends: readonly HaproxyBackend[], extra = ''): string {
  return `global
    log stdout format raw local0 info
    maxconn 4096

defaults
    mode http
    log global
    option httplog
    option forwardfor
    option redispatch
    retries 2
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout tunnel 1h
    timeout check 5s

frontend eva
    bind ${bind}
    default_backend eva_nodes

backend eva_nodes
    balance leastconn
    option httpchk
    # HTTP/1.1 with a Host (a loopback name, which EVA always accepts): uWebSockets.js does not answer HTTP/1.0.
    http-check send meth GET uri /health ver HTTP/1.1 hdr Host localhost
    http-check expect status 200
    default-server inter 1s fall 2 rise 2
${backends.map((b) => `    use-server ${b.name} if { urlp(node) -m str ${b.name} }`).join('\n')}
${backends.map((b) => `    server ${b.name} ${b.address}:${b.port} check`).join('\n')}
${extra}`;
}

export interface Haproxy {
  process: LabProcess;
  config: string;
}

export async function startHaproxy(t: TapLike, lab: NetLab, ns: string, config: string): Promise<Haproxy> {
  const dir = await tempDir(t, 'haproxy');
  const file = join(dir, 'haproxy.cfg');
  await writeFile(file, config);
  await lab.exec(ns, 'haproxy', ['-c', '-q', '-f', file]);
  // -db: foreground, logging to stdout. It prints nothing when it is up: the bind answering says so.
  const p = lab.spawn(ns, 'haproxy', 'haproxy', ['-db', '-f', file]);
  const bind = /^\s*bind\s+(\S+):(\d+)/m.exec(config);
  if (bind) await waitForTcp(lab, ns, bind[1]!, Number(bind[2]), START_TIMEOUT_MS, p);
  return { process: p, config };
}

/** A TCP connection from inside `ns`: resolves 'open', rejects with the failure (timeout, ECONNREFUSED …). */
export async function tcpProbe(lab: NetLab, ns: string, host: string, port: number, timeoutMs = 2000): Promise<string> {
  const script = `const s = require('net').connect({ host: ${JSON.stringify(host)}, port: ${port}, timeout: ${timeoutMs} });
s.on('connect', () => { console.log('open'); process.exit(0); });
s.on('timeout', () => { console.log('timeout'); process.exit(1); });
s.on('error', (e) => { console.log(e.code); process.exit(1); });`;
  return (await lab.exec(ns, process.execPath, ['-e', script])).stdout.trim();
}

async function waitForTcp(lab: NetLab, ns: string, host: string, port: number, timeoutMs: number, p: LabProcess): Promise<void> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    if (!p.running) throw new Error(`${p.name} exited before ${host}:${port} answered:\n${p.output().slice(-4000)}`);
    if (await tcpProbe(lab, ns, host, port, 500).then(() => true, () => false)) return;
    if (performance.now() > end) throw new Error(`${p.name}: nothing answers on ${host}:${port} after ${timeoutMs} ms:\n${p.output().slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface CallerResult {
  ok: boolean;
  error?: string;
  connectMs?: number;
  iceServers?: { urls: string[]; username?: string; credential?: string }[];
  pair?: { local: { type: string; address: string; port: number }; remote: { type: string; address: string; port: number } } | null;
  session?: string;
  echoMs?: number;
  reply?: string;
  events?: string[];
  status?: number;
  body?: Record<string, unknown>;
}

/** Runs bench/net-caller.ts (built) in `ns` and returns its one JSON line; `timeoutMs` bounds the whole run. */
export async function runCaller(lab: NetLab, ns: string, args: readonly string[], timeoutMs = 60_000): Promise<CallerResult> {
  const p = lab.spawn(ns, 'caller', process.execPath, [CALLER, ...args], { cwd: ROOT });
  const killer = setTimeout(() => void p.stop(), timeoutMs);
  await p.exited;
  clearTimeout(killer);
  const line = p.output().split('\n').reverse().find((l) => l.startsWith('{"ok":'));
  if (!line) throw new Error(`the caller printed no result (killed after ${timeoutMs} ms?):\n${p.output().slice(-4000)}`);
  return JSON.parse(line) as CallerResult;
}
