// A throw-away PostgreSQL server for the store tests: initdb into a temp directory, postgres on a free loopback
// port, trust authentication, no fsync (the data dies with the test). Debian's postgresql package puts the
// binaries in /usr/lib/postgresql/<major>/bin; PostgreSQL refuses to run as root, so as root the server runs as
// the `postgres` user the package creates (spawned with its uid and gid: a wrapper such as runuser would not pass
// our SIGINT on).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface PostgresServer {
  /** postgres://otalink@127.0.0.1:<port>/postgres */
  url: string;
  stop(): Promise<void>;
}

/** Where initdb and postgres are, or why they cannot be used here (the test's skip reason). */
export interface PostgresBinaries {
  bin: string;
  /** The user to run as, when we are root. */
  user?: { uid: number; gid: number };
}

export function findPostgres(): PostgresBinaries | { skip: string } {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root)
    ? readdirSync(root)
        .filter((d) => existsSync(join(root, d, 'bin', 'postgres')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const major = majors[0];
  if (major === undefined) return { skip: 'PostgreSQL server not installed (apt-get install postgresql)' };
  const bin = join(root, major, 'bin');
  if (process.getuid?.() !== 0) return { bin };
  try {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
    return { bin, user: { uid: id('-u'), gid: id('-g') } };
  } catch {
    return { skip: 'running as root and there is no postgres user to run PostgreSQL as' };
  }
}

export async function startPostgres(found: PostgresBinaries): Promise<PostgresServer> {
  const dir = mkdtempSync(join(tmpdir(), 'otalink-pg-'));
  const data = join(dir, 'data');
  if (found.user !== undefined) chownSync(dir, found.user.uid, found.user.gid);
  const as = found.user ?? {};
  execFileSync(
    join(found.bin, 'initdb'),
    ['-D', data, '-U', 'otalink', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions'],
    { stdio: ['ignore', 'ignore', 'pipe'], ...as },
  );
  // A port is only known free when probed: a test file running beside this one may take it before PostgreSQL
  // binds it. PostgreSQL then exits saying so, and starts again on a fresh port.
  for (let attempt = 1; ; attempt++) {
    const started = await runOn(found, dir, data, await freePort());
    if ('url' in started) return started;
    if (attempt >= 5 || !/could not bind|already in use/i.test(started.log)) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`PostgreSQL did not start: ${started.log}`);
    }
  }
}

/** Starts PostgreSQL on `port`; its log when it exits or does not answer within 30 s. */
async function runOn(
  found: PostgresBinaries,
  dir: string,
  data: string,
  port: number,
): Promise<PostgresServer | { log: string }> {
  const as = found.user ?? {};
  const args = [
    '-D',
    data,
    '-h',
    '127.0.0.1',
    '-p',
    String(port),
    '-k',
    dir,
    '-c',
    'fsync=off',
    '-c',
    'full_page_writes=off',
    '-c',
    'max_connections=200',
  ];
  const child: ChildProcess = spawn(join(found.bin, 'postgres'), args, { stdio: ['ignore', 'ignore', 'pipe'], ...as });
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-4000);
  });
  const url = `postgres://otalink@127.0.0.1:${port}/postgres`;
  const halt = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGINT'); // fast shutdown: ends sessions, no checkpoint wait beyond the minimum
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  };
  const stop = async () => {
    await halt();
    rmSync(dir, { recursive: true, force: true });
  };
  // Ready when it accepts a query; bounded so a server that cannot start fails the test with its log.
  const deadline = Date.now() + 30_000;
  for (;;) {
    // Bounded: a process beside ours that took the port may accept and never answer.
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
      // A server on this port that is not ours (it took the port first) would answer too: ours must still run.
      if (child.exitCode !== null || child.signalCode !== null) throw new Error('exited');
      return { url, stop };
    } catch {
      await client.end().catch(() => {});
      if (Date.now() > deadline || child.exitCode !== null || child.signalCode !== null) {
        await halt();
        // 'close': the exit's last words are read by then.
        if (child.stderr !== null && !child.stderr.closed) await new Promise((r) => child.once('close', r));
        return { log };
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
