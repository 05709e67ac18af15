// `otalink broker` as a user runs it: a child process, its config file and flags, a client, SIGHUP, then SIGTERM.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { makeCertificates, type TestCertificates } from './support/certs.js';
import { connected, subscribe } from './support/raw-client.js';

const root = new URL('../../../', import.meta.url).pathname;
let dir = '';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'otalink-broker-cli-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface Started {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
}

function start(args: string[], env: Record<string, string> = {}): Started {
  const child = spawn(process.execPath, [join(root, 'bin/otalink.js'), 'broker', ...args], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '', ...env },
  });
  let stderr = '';
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  child.stdout?.resume();
  const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const exited = new Promise<number | null>((resolve) => {
    child.on('close', (code) => {
      clearTimeout(guard);
      resolve(code);
    });
  });
  return { child, stderr: () => stderr, exited };
}

/** Waits for the log line with `field` (e.g. the listener addresses) and returns its value. */
async function logged<T>(started: Started, field: string): Promise<T> {
  for (let i = 0; i < 300; i++) {
    for (const line of started.stderr().split('\n')) {
      if (!line.startsWith('{') || !line.endsWith('}')) continue;
      const record = JSON.parse(line) as Record<string, unknown>;
      if (record[field] !== undefined) return record[field] as T;
    }
    if (started.child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the broker did not log ${field}:\n${started.stderr()}`);
}

/** A TLS connection trusting only `ca`, with a client certificate and an accepted MQTT 3.1.1 CONNECT on it. */
async function tlsConnected(port: number, ca: string, client: { cert: string; key: string }): Promise<TLSSocket> {
  const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...client });
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  // Its own client id (the CN): connections with one id would take each other over.
  const id = Buffer.from(new X509Certificate(client.cert).subject.replace(/^.*CN=/s, ''));
  const body = Buffer.concat([
    Buffer.from([0, 4]),
    Buffer.from('MQTT'),
    Buffer.from([4, 0x02, 0, 60, 0, id.length]),
    id,
  ]);
  socket.write(Buffer.concat([Buffer.from([0x10, body.length]), body]));
  const connack = await new Promise<Buffer>((resolve, reject) => {
    socket.once('data', resolve);
    socket.once('error', reject);
    // A refused client certificate (TLS 1.3: after the handshake) may end the socket without an error event.
    socket.once('close', () => reject(new Error('closed before CONNACK: certificate refused?')));
  });
  assert.equal(connack[3], 0);
  return socket;
}

/** Waits for a log record that `match` picks and returns it. */
async function loggedRecord(
  started: Started,
  match: (record: { msg?: string } & Record<string, unknown>) => boolean,
): Promise<{ msg?: string } & Record<string, unknown>> {
  for (let i = 0; i < 300; i++) {
    for (const line of started.stderr().split('\n')) {
      if (!line.startsWith('{') || !line.endsWith('}')) continue;
      const record = JSON.parse(line) as { msg?: string } & Record<string, unknown>;
      if (match(record)) return record;
    }
    if (started.child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the broker did not log what was expected:\n${started.stderr()}`);
}

function addresses(started: Started): Promise<string[]> {
  return logged<string[]>(started, 'addresses');
}

/** MQTT 3.1.1 CONNECT with clean session, client id "cli-test", optional user name and password; resolves with the CONNACK return code. */
function connack(port: number, username?: string, password?: string): Promise<number> {
  const id = Buffer.from('cli-test');
  const parts: Buffer[] = [Buffer.from([0, 4]), Buffer.from('MQTT'), Buffer.from([4])];
  let flags = 0x02;
  if (username !== undefined) flags |= 0x80;
  if (password !== undefined) flags |= 0x40;
  parts.push(Buffer.from([flags, 0, 60]), Buffer.from([0, id.length]), id);
  for (const field of [username, password]) {
    if (field === undefined) continue;
    const bytes = Buffer.from(field);
    parts.push(Buffer.from([0, bytes.length]), bytes);
  }
  const body = Buffer.concat(parts);
  const packet = Buffer.concat([Buffer.from([0x10, body.length]), body]);
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(packet));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no CONNACK'));
    }, 10_000);
    socket.once('data', (data) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(data[3] as number);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

describe('otalink broker', () => {
  test('flags: listens where told, accepts anonymous clients, exits 0 on SIGTERM', async () => {
    const started = start(['-p', '0', '--host', '127.0.0.1', '--allow-anonymous', '--log-level', 'info']);
    try {
      const [address] = await addresses(started);
      assert.match(address ?? '', /^mqtt:\/\/127\.0\.0\.1:\d+$/);
      const port = Number(new URL(address as string).port);
      assert.equal(await connack(port), 0);
    } finally {
      started.child.kill('SIGTERM');
    }
    assert.equal(await started.exited, 0, started.stderr());
    assert.match(started.stderr(), /"signal":"SIGTERM"/);
  });

  test('config file + password file + environment: a wrong password is refused, the right one accepted', async () => {
    const passwd = await new Promise<number | null>((resolve) => {
      const child = spawn(
        process.execPath,
        [join(root, 'bin/otalink.js'), 'passwd', '-c', '-b', 'users.passwd', 'vin1', 'pw1'],
        {
          cwd: dir,
          stdio: 'ignore',
        },
      );
      child.on('close', resolve);
    });
    assert.equal(passwd, 0);
    writeFileSync(
      join(dir, 'broker.conf'),
      'password_file users.passwd\nlog_level info\nmetrics_listener 0 127.0.0.1\nlistener 0 127.0.0.1\n',
    );
    const started = start([], { OTALINK_BROKER_CONFIG: join(dir, 'broker.conf'), OTALINK_BROKER_SYS_INTERVAL: '0' });
    try {
      const [address] = await addresses(started);
      const port = Number(new URL(address as string).port);
      assert.equal(await connack(port, 'vin1', 'wrong'), 4);
      assert.equal(await connack(port), 5);
      assert.equal(await connack(port, 'vin1', 'pw1'), 0);
      const metricsUrl = await logged<string>(started, 'metrics');
      const response = await fetch(metricsUrl);
      assert.equal(response.status, 200);
      const text = await response.text();
      const accepted = /^otalink_broker_connections_total (\d+)$/m.exec(text);
      assert.ok(accepted, text);
      assert.ok(Number(accepted[1]) >= 1, text);
    } finally {
      started.child.kill('SIGINT');
    }
    assert.equal(await started.exited, 0, started.stderr());
  });

  test('SIGHUP: a removed user is disconnected, a narrower ACL applies, a broken file changes nothing', async () => {
    const passwd = (...args: string[]) =>
      new Promise<number | null>((resolve) => {
        const child = spawn(process.execPath, [join(root, 'bin/otalink.js'), 'passwd', ...args], {
          cwd: dir,
          stdio: 'ignore',
        });
        child.on('close', resolve);
      });
    assert.equal(await passwd('-c', '-b', 'hup.passwd', 'vin1', 'pw1'), 0);
    assert.equal(await passwd('-b', 'hup.passwd', 'vin2', 'pw2'), 0);
    writeFileSync(join(dir, 'hup.acl'), 'pattern readwrite ota/%u/#\nuser vin2\ntopic read fleet/#\n');
    writeFileSync(
      join(dir, 'hup.conf'),
      'password_file hup.passwd\nacl_file hup.acl\nlog_level info\nsys_interval 0\nlistener 0 127.0.0.1\n',
    );
    const started = start(['-c', 'hup.conf']);
    try {
      const [address] = await addresses(started);
      const port = Number(new URL(address as string).port);
      const login = (user: string, password: string) => ({
        version: 5 as const,
        clientId: user,
        username: user,
        password: new TextEncoder().encode(password),
      });
      const vin1 = await connected(port, login('vin1', 'pw1'));
      const vin2 = await connected(port, login('vin2', 'pw2'));
      assert.deepEqual(await subscribe(vin2, 'fleet/#', 1), [1]);
      assert.equal(await passwd('-D', 'hup.passwd', 'vin1'), 0);
      writeFileSync(join(dir, 'hup.acl'), 'pattern readwrite ota/%u/#\n');
      started.child.kill('SIGHUP');
      const reloaded = await loggedRecord(started, (r) => r.msg?.startsWith('reloaded') === true);
      assert.deepEqual(reloaded.changedUsers, ['vin1']);
      assert.equal(reloaded.disconnected, 1);
      assert.equal(reloaded.subscriptionsRemoved, 1);
      const last = await vin1.expectClose();
      assert.deepEqual(
        last.map((p) => (p.type === 'disconnect' ? p.reasonCode : p.type)),
        [0x87],
      );
      assert.equal(await connack(port, 'vin1', 'pw1'), 4, 'vin1 can no longer connect');
      vin2.send({ type: 'pingreq' });
      await vin2.expect('pingresp');

      writeFileSync(join(dir, 'hup.acl'), 'pattern readwrite ota/%u/#\ntopic read ota/#/status\n');
      started.child.kill('SIGHUP');
      const failed = await loggedRecord(started, (r) => r.msg?.startsWith('reload failed') === true);
      assert.equal(failed.code, 'BROKER_ERR_CONFIG');
      assert.match(failed.msg ?? '', /hup\.acl:2/);
      vin2.send({ type: 'pingreq' });
      await vin2.expect('pingresp');
      assert.equal(await connack(port, 'vin2', 'pw2'), 0, 'the running configuration stays');
      vin2.end();
    } finally {
      started.child.kill('SIGTERM');
    }
    assert.equal(await started.exited, 0, started.stderr());
  });

  test('SIGHUP: a renewed server certificate and client CA serve new handshakes; connections made stay', async (t) => {
    const before = makeCertificates();
    const after = makeCertificates();
    if (before === undefined || after === undefined) {
      t.skip('openssl is not installed');
      return;
    }
    try {
      const install = (certs: TestCertificates) => {
        writeFileSync(join(dir, 'tls-server.crt'), certs.serverCert);
        writeFileSync(join(dir, 'tls-server.key'), certs.serverKey);
        writeFileSync(join(dir, 'tls-ca.crt'), certs.ca);
      };
      install(before);
      writeFileSync(
        join(dir, 'tls.conf'),
        [
          'allow_anonymous true',
          'sys_interval 0',
          'listener 0 127.0.0.1',
          'protocol mqtts',
          'certfile tls-server.crt',
          'keyfile tls-server.key',
          'cafile tls-ca.crt',
          'require_certificate true',
          '',
        ].join('\n'),
      );
      const started = start(['-c', 'tls.conf']);
      try {
        const [address] = await addresses(started);
        const port = Number(new URL(address as string).port);
        const old = await tlsConnected(port, before.ca, before.client('v-old'));
        install(after);
        started.child.kill('SIGHUP');
        const reloaded = await loggedRecord(started, (r) => r.msg?.startsWith('reloaded') === true);
        assert.equal(reloaded.tlsListeners, 1);
        await assert.rejects(
          tlsConnected(port, before.ca, after.client('v1')),
          /certificate/i,
          'the server shows the new certificate, which the old CA does not verify',
        );
        await assert.rejects(
          tlsConnected(port, after.ca, before.client('v2')),
          /certificate|alert|unknown ca|socket hang up|ECONNRESET/i,
          'a client certificate of the old CA is refused',
        );
        (await tlsConnected(port, after.ca, after.client('v3'))).destroy();
        old.write(Buffer.from([0xc0, 0x00])); // PINGREQ on the connection made before the reload
        const [pong] = (await once(old, 'data')) as [Buffer];
        assert.deepEqual([...pong], [0xd0, 0x00]);
        old.destroy();
      } finally {
        started.child.kill('SIGTERM');
      }
      assert.equal(await started.exited, 0, started.stderr());
    } finally {
      before.remove();
      after.remove();
    }
  });

  test('a bad config: one line naming file, line and key on stderr, exit code 2', async () => {
    writeFileSync(join(dir, 'bad.conf'), '# broker\nlistener 1883\nmax_connections abc\n');
    const started = start(['-c', 'bad.conf']);
    assert.equal(await started.exited, 2);
    assert.equal(
      started.stderr(),
      'otalink broker: bad.conf:3: max_connections: expected a positive integer, got "abc"\n',
    );
  });

  test('a port in use: one line saying so, exit code 1', async () => {
    const taken = createServer();
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const { port } = taken.address() as AddressInfo;
    try {
      const started = start(['--host', '127.0.0.1', '--port', String(port), '--allow-anonymous']);
      assert.equal(await started.exited, 1);
      const said = started
        .stderr()
        .split('\n')
        .filter((line) => line.startsWith('otalink broker:'));
      assert.deepEqual(said, [
        `otalink broker: cannot listen on mqtt://127.0.0.1:${port}: the port is in use: another process, or another listener of this broker, listens on it (EADDRINUSE)`,
      ]);
    } finally {
      taken.close();
    }
  });

  test('bad flags exit 2; --help exits 0', async () => {
    const unknown = start(['--frobnicate']);
    assert.equal(await unknown.exited, 2);
    assert.match(unknown.stderr(), /otalink broker: .*frobnicate/);
    const port = start(['-p', 'eighty']);
    assert.equal(await port.exited, 2);
    assert.equal(port.stderr(), 'otalink broker: --port: expected a port number from 0 to 65535, got "eighty"\n');
    const help = start(['--help']);
    assert.equal(await help.exited, 0);
  });
});
