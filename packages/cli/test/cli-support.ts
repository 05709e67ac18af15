// Test support for the artifact/campaign commands: captured stdout/stderr and a backend HTTP server (in-memory
// service) on an HTTPS port 0 with a throwaway certificate.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type RunningHttpServer, startHttpServer } from '@otalink/backend';
import { FakeBackend, selfSignedCert } from '../../backend/test/http-support.js';

export class Capture extends Writable {
  text = '';
  isTTY: boolean;
  columns = 80;

  constructor(isTTY = false) {
    super();
    this.isTTY = isTTY;
  }

  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

export interface TestBackend {
  service: FakeBackend;
  server: RunningHttpServer;
  /** The dev CA (here the self-signed certificate itself) as a file for --cafile. */
  caFile: string;
  dir: string;
  /** An admin token, also written where the CLI looks by default: `<dir>/backend/admin-token` (dir = OTALINK_HOME). */
  token: string;
  close(): Promise<void>;
}

/** OTALINK_HOME of the test backend started last, so that io() finds its token file the way a user's CLI does. */
let home: string | undefined;

export async function startTestBackend(): Promise<TestBackend | undefined> {
  const cert = selfSignedCert();
  if (cert === undefined) return undefined;
  const service = new FakeBackend();
  const server = await startHttpServer({ service, tls: cert, host: '127.0.0.1', port: 0 });
  const dir = mkdtempSync(join(tmpdir(), 'otalink-cli-'));
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, cert.cert);
  const { token } = await service.bearer('admin');
  mkdirSync(join(dir, 'backend'));
  writeFileSync(join(dir, 'backend', 'admin-token'), `${token}\n`, { mode: 0o600 });
  home = dir;
  return {
    service,
    server,
    caFile,
    dir,
    token,
    async close() {
      await server.close();
      service.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Captured output; the environment names the last test backend's home (its admin-token file), or a missing one. */
export function io(stdout = new Capture(), stderr = new Capture()) {
  const env: Record<string, string | undefined> = { OTALINK_HOME: home ?? join(tmpdir(), 'otalink-no-home') };
  return { stdout, stderr, env };
}
