// Test certificates made at test time with the openssl CLI (never committed): a CA, a server certificate for
// localhost/127.0.0.1 and client certificates with a chosen CN.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCertificates {
  dir: string;
  ca: string;
  caPath: string;
  serverCert: string;
  serverKey: string;
  /** A client certificate signed by the CA: CN `cn`, or the whole subject when `cn` starts with '/'. */
  client(cn: string): { cert: string; key: string; certPath: string; keyPath: string };
  /** A client certificate signed by a different CA (must be rejected). */
  stranger: { cert: string; key: string };
  remove(): void;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function selfSigned(dir: string, name: string, cn: string): void {
  openssl(dir, [
    'req',
    '-x509',
    ...EC,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.crt`,
    '-days',
    '2',
    '-subj',
    `/CN=${cn}`,
  ]);
}

function signed(dir: string, ca: string, name: string, cn: string, ext?: string): void {
  const subject = cn.startsWith('/') ? cn : `/CN=${cn}`;
  openssl(dir, ['req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
  const args = ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial'];
  args.push('-out', `${name}.crt`, '-days', '2');
  if (ext !== undefined) {
    writeFileSync(join(dir, `${name}.ext`), ext);
    args.push('-extfile', `${name}.ext`);
  }
  openssl(dir, args);
}

/** Returns undefined when the openssl CLI is missing. */
export function makeCertificates(): TestCertificates | undefined {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  const dir = mkdtempSync(join(tmpdir(), 'otalink-certs-'));
  selfSigned(dir, 'ca', 'otalink test CA');
  selfSigned(dir, 'other-ca', 'someone else');
  signed(dir, 'ca', 'server', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  signed(dir, 'other-ca', 'stranger', 'stranger');
  const read = (file: string) => readFileSync(join(dir, file), 'utf8');
  const clients = new Map<string, { cert: string; key: string; certPath: string; keyPath: string }>();
  return {
    dir,
    ca: read('ca.crt'),
    caPath: join(dir, 'ca.crt'),
    serverCert: read('server.crt'),
    serverKey: read('server.key'),
    client(cn) {
      let made = clients.get(cn);
      if (made === undefined) {
        const name = `client-${clients.size}`;
        signed(dir, 'ca', name, cn);
        made = {
          cert: read(`${name}.crt`),
          key: read(`${name}.key`),
          certPath: join(dir, `${name}.crt`),
          keyPath: join(dir, `${name}.key`),
        };
        clients.set(cn, made);
      }
      return made;
    },
    stranger: { cert: read('stranger.crt'), key: read('stranger.key') },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
