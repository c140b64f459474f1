// A private, throwaway PostgreSQL cluster for tests, from Debian's binaries (the postgresql package:
// /usr/lib/postgresql/<version>/bin): initdb in a temp directory, listening on 127.0.0.1 on a free port (and on a
// unix socket in that directory, never /var/run), a generated password for TCP (so tests see that EVA never
// prints it), fsync off. initdb refuses to run as root, so as root the directory is given to the `postgres`
// system user and every command runs through `runuser -u postgres --`. `stop()` (pg_ctl stop -m fast) removes the
// directory; a process that exits without it stops the cluster on its way out.
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { Test } from 'tap';

/** initdb + start on a loaded 2-core machine take 2-5 s; a command that runs this long is stuck. */
const COMMAND_TIMEOUT_MS = 60_000;
const ROOT_DIR = '/usr/lib/postgresql';

export interface Postgres {
  /** `postgres://postgres:<password>@127.0.0.1:<port>/postgres` */
  readonly url: string;
  readonly port: number;
  readonly password: string;
  /** A fresh, empty database in this cluster; returns its URL. */
  createDatabase(name?: string): Promise<string>;
  /** Stops the server (pg_ctl stop -m fast), keeping its data: a database going away under a running EVA. */
  halt(): Promise<void>;
  /** Starts it again on the same port. */
  resume(): Promise<void>;
  /** Stops the server and removes its directory; a second call does nothing. */
  stop(): Promise<void>;
}

/** The directory holding initdb and pg_ctl (the newest installed version), or null. */
export function postgresBinDir(): string | null {
  if (!existsSync(ROOT_DIR)) return null;
  const versions = readdirSync(ROOT_DIR)
    .filter((v) => existsSync(join(ROOT_DIR, v, 'bin', 'initdb')) && existsSync(join(ROOT_DIR, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(ROOT_DIR, versions[0], 'bin') : null;
}

/**
 * For a test file that needs PostgreSQL: true when the binaries are there. Without them, the file fails with a
 * clear message under CI (which installs the postgresql package) and is skipped with the reason elsewhere.
 */
export function havePostgres(t: Pick<Test, 'test'>): boolean {
  if (postgresBinDir()) return true;
  const why = `PostgreSQL's server binaries are not installed (no ${ROOT_DIR}/<version>/bin/initdb): apt-get install postgresql`;
  if (process.env.CI) throw new Error(why);
  void t.test('the PostgreSQL tests', { skip: why }, () => {});
  return false;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts a cluster; `stop()` it in teardown. `listen` + `netns` (test/net/): run it inside that network namespace,
 * on that address, open (with the password) to the subnets the namespace is on; `createDatabase` then needs a
 * route to it.
 */
export async function startPostgres(opts: { listen?: string; netns?: string } = {}): Promise<Postgres> {
  const bin = postgresBinDir();
  if (!bin) throw new Error(`PostgreSQL's server binaries are not installed (no ${ROOT_DIR}/<version>/bin/initdb): apt-get install postgresql`);
  const asRoot = userInfo().uid === 0;
  const dir = mkdtempSync(join(tmpdir(), 'eva-pg-'));
  const data = join(dir, 'data');
  const password = randomBytes(12).toString('hex');
  const pwfile = join(dir, 'pw');
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  if (asRoot) {
    const { uid, gid } = postgresUser();
    chownSync(dir, uid, gid);
    chownSync(pwfile, uid, gid);
  }
  chmodSync(dir, 0o700);

  /** Runs one of the cluster's binaries as its owner. */
  const run = (tool: string, args: string[]): Promise<string> =>
    new Promise((resolve, reject) => {
      const [own, ownArgv] = asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, tool), ...args]] : [join(bin, tool), args];
      const [cmd, argv] = opts.netns ? ['ip', ['netns', 'exec', opts.netns, own, ...ownArgv]] : [own, ownArgv];
      execFile(cmd, argv, { timeout: COMMAND_TIMEOUT_MS, cwd: dir }, (err, stdout, stderr) => {
        if (err) reject(new Error(`${tool} ${args[0] ?? ''} failed: ${err.message}\n${stderr}${stdout}`));
        else resolve(stdout);
      });
    });

  let running = false;
  let removed = false;
  const port = await freePort();
  const pgCtlStart = ['start', '-D', data, '-w', '-t', '30', '-l', join(dir, 'log'), '-o', `-c listen_addresses=${opts.listen ?? '127.0.0.1'} -p ${port} -k ${dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=40 -c shared_buffers=16MB`];
  const stopNow = (): void => {
    // The process is going away without stop(): pg_ctl synchronously, so that no server outlives the test.
    if (running) {
      try {
        execFileSync(asRoot ? 'runuser' : join(bin, 'pg_ctl'), [...(asRoot ? ['-u', 'postgres', '--', join(bin, 'pg_ctl')] : []), 'stop', '-D', data, '-m', 'immediate', '-w'], { timeout: 10_000, stdio: 'ignore' });
      } catch {
        // Nothing more to do on the way out.
      }
    }
    if (!removed) rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', stopNow);
  try {
    await run('initdb', ['-D', data, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', `--pwfile=${pwfile}`, '-E', 'UTF8', '--no-sync', '--no-instructions']);
    if (opts.listen) appendFileSync(join(data, 'pg_hba.conf'), 'host all all samenet scram-sha-256\n');
    await run('pg_ctl', pgCtlStart);
    running = true;
  } catch (err) {
    stopNow();
    process.off('exit', stopNow);
    throw err;
  }
  const url = `postgres://postgres:${password}@${opts.listen ?? '127.0.0.1'}:${port}/postgres`;
  let dbs = 0;

  return {
    url,
    port,
    password,
    async createDatabase(name = `t${process.pid}_${++dbs}`) {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a plain database name: ${name}`);
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${name}`);
      } finally {
        await c.end();
      }
      return url.replace(/\/postgres$/, `/${name}`);
    },
    async halt() {
      if (!running) return;
      await run('pg_ctl', ['stop', '-D', data, '-m', 'fast', '-w']);
      running = false;
    },
    async resume() {
      if (running || removed) return;
      await run('pg_ctl', pgCtlStart);
      running = true;
    },
    async stop() {
      if (removed) return;
      try {
        if (running) await run('pg_ctl', ['stop', '-D', data, '-m', 'fast', '-w']);
        running = false;
      } finally {
        process.off('exit', stopNow);
        stopNow();
        removed = true;
      }
    },
  };
}

function postgresUser(): { uid: number; gid: number } {
  let out = '';
  try {
    out = execFileSync('id', ['postgres'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    out = (err as Error).message;
  }
  const uid = /uid=(\d+)/.exec(out);
  const gid = /gid=(\d+)/.exec(out);
  if (!uid || !gid) throw new Error(`initdb refuses to run as root and there is no postgres user to run it as (id postgres: ${out.trim()})`);
  return { uid: Number(uid[1]), gid: Number(gid[1]) };
}
