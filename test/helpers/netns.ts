// Network namespaces for the tests that need separate networks (test/net/): a lab of namespaces joined by veth
// pairs, with processes started inside them. Everything a lab creates is removed when its test ends (processes
// first, since a namespace with a process in it outlives `ip netns del`), when the test process exits, and —
// for a test process that was killed — by the next lab, which deletes namespaces whose creator is gone.
// Needs root and iproute2; without them the test is skipped with the reason, and fails instead when CI is set.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const PREFIX = 'evat';
const KEEP_OUTPUT = 256 * 1024;
/** A command in a lab (ip, sysctl) that takes longer than this is stuck. */
const EXEC_TIMEOUT_MS = 15_000;

interface TapLike {
  teardown(fn: () => unknown): void;
}

/** Where `name` is on PATH (plus the sbin directories a non-login root shell may lack), or null. */
export function which(name: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const d of dirs) {
    const p = join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

/** Why a lab cannot run here (null: it can): root, `ip`, namespaces allowed, and the named programs. */
export function labUnavailable(programs: readonly string[] = []): string | null {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root (run the tests as root, as CI does)';
  if (!which('ip')) return 'network namespaces need iproute2 (`ip`): apt-get install iproute2';
  const missing = programs.filter((p) => !which(p));
  if (missing.length) return `missing ${missing.join(', ')} (.ci/run installs them: apt-get install ${missing.map(debianPackage).join(' ')})`;
  const probe = `${PREFIX}-${process.pid}-probe${randomBytes(2).toString('hex')}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe', timeout: EXEC_TIMEOUT_MS });
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'pipe', timeout: EXEC_TIMEOUT_MS });
  } catch (err) {
    return `cannot create a network namespace here (${((err as { stderr?: Buffer }).stderr?.toString() || (err as Error).message).trim()})`;
  }
  return null;
}

function debianPackage(program: string): string {
  return ({ turnserver: 'coturn', haproxy: 'haproxy', postgres: 'postgresql', initdb: 'postgresql', ip: 'iproute2' } as Record<string, string>)[program] ?? program;
}

/**
 * Skip the whole test file (tap `plan(0, reason)`) when a lab cannot run here; under CI that is a failure, so a
 * CI machine that lost root or a package does not pass by skipping. Returns true when the file may go on.
 */
export function requireLab(t: { plan(n: number, reason?: string): void; fail(msg: string): void }, programs: readonly string[] = []): boolean {
  const why = labUnavailable(programs);
  if (!why) return true;
  if (process.env.CI) t.fail(`network test cannot run under CI: ${why}`);
  else t.plan(0, `skipped: ${why}`);
  return false;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** Namespaces left by lab processes that no longer run (a killed test): deleted, their veths with them. */
function sweepStale(): void {
  let list = '';
  try {
    list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: EXEC_TIMEOUT_MS });
  } catch {
    return;
  }
  for (const line of list.split('\n')) {
    const m = new RegExp(`^(${PREFIX}-(\\d+)-\\S+)`).exec(line);
    if (m && Number(m[2]) !== process.pid && !alive(Number(m[2]))) {
      try {
        execFileSync('ip', ['netns', 'del', m[1]!], { stdio: 'ignore', timeout: EXEC_TIMEOUT_MS });
      } catch {
        // another sweeper got it first
      }
    }
  }
}

const openLabs = new Set<NetLab>();
let exitHook = false;

/** One process started inside a namespace; output kept (bounded) for waiting on and for failure messages. */
export class LabProcess {
  private out = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(readonly name: string, readonly child: ChildProcess) {
    const keep = (s: string): void => {
      this.out = (this.out + s).slice(-KEEP_OUTPUT);
    };
    child.stdout?.setEncoding('utf8').on('data', keep);
    child.stderr?.setEncoding('utf8').on('data', keep);
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    child.once('error', (err) => keep(`\n[spawn failed: ${err.message}]\n`));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  output(): string {
    return this.out;
  }

  /** Resolves with the first match of `re` in the output (stdout and stderr); rejects on exit or timeout. */
  async waitFor(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    const end = performance.now() + timeoutMs;
    for (;;) {
      const m = re.exec(this.out);
      if (m) return m;
      if (!this.running) throw new Error(`${this.name} exited (${this.child.exitCode ?? this.child.signalCode}) before printing ${re}:\n${this.out.slice(-4000)}`);
      if (performance.now() > end) throw new Error(`${this.name} did not print ${re} within ${timeoutMs} ms:\n${this.out.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`. Idempotent. */
  async stop(graceMs = 3000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const killer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(killer);
  }
}

export class NetLab {
  /** Short and unique: namespace and interface names are built from it (interface names have 15 bytes). */
  readonly id = randomBytes(2).toString('hex');
  private readonly namespaces: string[] = [];
  private readonly processes = new Set<LabProcess>();
  private links = 0;
  private closed = false;

  /** A lab whose namespaces and processes go when the test ends. */
  static create(t: TapLike): NetLab {
    sweepStale();
    const lab = new NetLab();
    openLabs.add(lab);
    if (!exitHook) {
      exitHook = true;
      // A test that throws past its teardown, or tap's timeout: still leave no namespace behind.
      process.once('exit', () => {
        for (const l of openLabs) l.closeSync();
      });
    }
    t.teardown(() => lab.close());
    return lab;
  }

  /** A new namespace with loopback up; returns its name (`evat-<pid>-<lab>-<role>`). */
  async namespace(role: string): Promise<string> {
    if (!/^[a-z0-9]{1,8}$/.test(role)) throw new Error(`a namespace role is 1-8 of a-z0-9, got ${JSON.stringify(role)}`);
    const name = `${PREFIX}-${process.pid}-${this.id}-${role}`;
    await run('ip', ['netns', 'add', name], { timeout: EXEC_TIMEOUT_MS });
    this.namespaces.push(name);
    await this.exec(name, 'ip', ['link', 'set', 'lo', 'up']);
    return name;
  }

  /** A veth pair between two namespaces, each end with its address (`10.77.1.2/24`), both up. */
  async link(a: string, aCidr: string, b: string, bCidr: string): Promise<void> {
    const n = ++this.links;
    const ea = `ev${this.id}${n}a`;
    const eb = `ev${this.id}${n}b`;
    await run('ip', ['link', 'add', ea, 'netns', a, 'type', 'veth', 'peer', 'name', eb, 'netns', b], { timeout: EXEC_TIMEOUT_MS });
    for (const [ns, dev, cidr] of [[a, ea, aCidr], [b, eb, bCidr]] as const) {
      await this.exec(ns, 'ip', ['addr', 'add', cidr, 'dev', dev]);
      await this.exec(ns, 'ip', ['link', 'set', dev, 'up']);
    }
  }

  /** A command inside `ns`; rejects with its output when it fails. */
  async exec(ns: string, cmd: string, args: readonly string[], timeoutMs = EXEC_TIMEOUT_MS): Promise<{ stdout: string; stderr: string }> {
    try {
      return await run('ip', ['netns', 'exec', ns, cmd, ...args], { timeout: timeoutMs, maxBuffer: KEEP_OUTPUT });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      throw new Error(`in ${ns}: ${cmd} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
    }
  }

  /**
   * A long-running process inside `ns`, stopped when the lab closes. `ip netns exec` execs it: the pid is its own.
   * Its stdin is a pipe the lab holds and never writes: an EVA started with EVA_EXIT_ON_STDIN_CLOSE=1 exits by
   * itself if the test process is killed before it can stop it.
   */
  spawn(ns: string, name: string, cmd: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): LabProcess {
    if (this.closed) throw new Error('the lab is closed');
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const p = new LabProcess(name, child);
    this.processes.add(p);
    void p.exited.then(() => this.processes.delete(p));
    return p;
  }

  /** Stops every process, then deletes every namespace (and with them their veths). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.processes].map((p) => p.stop()));
    const failed: string[] = [];
    for (const ns of this.namespaces.splice(0)) {
      await run('ip', ['netns', 'del', ns], { timeout: EXEC_TIMEOUT_MS }).catch((err: Error) => failed.push(`${ns}: ${err.message}`));
    }
    openLabs.delete(this);
    if (failed.length) throw new Error(`could not delete network namespaces: ${failed.join('; ')}`);
  }

  private closeSync(): void {
    for (const p of this.processes) if (p.running) p.child.kill('SIGKILL');
    for (const ns of this.namespaces.splice(0)) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: EXEC_TIMEOUT_MS });
      } catch {
        // already gone
      }
    }
    this.closed = true;
  }
}
