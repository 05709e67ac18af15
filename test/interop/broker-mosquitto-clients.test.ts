// Interop: our broker against Mosquitto's command-line clients (mosquitto_pub / mosquitto_sub), MQTT 3.1.1 and
// 5.0: every QoS, retained, will, persistent session (-c), shared subscription, TLS and mutual TLS.
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { type Broker, createBroker } from '../../packages/broker/src/index.js';
import { makeCertificates, type TestCertificates } from '../../packages/broker/test/support/certs.js';
import { findProgram, requireProgram } from '../support/system.js';

const pub = findProgram('mosquitto_pub');
const sub = findProgram('mosquitto_sub');

function run(
  program: string,
  args: string[],
  timeoutMs = 10_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(program, args, { timeout: timeoutMs }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stdout, stderr });
    });
  });
}

const stdbuf = findProgram('stdbuf');

/** A mosquitto_sub that prints messages as `MSG topic payload`; resolves once its SUBACK arrived. */
async function subscriber(
  args: string[],
): Promise<{ child: ChildProcess; lines: () => string[]; done: Promise<void> }> {
  // Line-buffered stdout (stdbuf), so the SUBACK debug line and each message arrive while it runs.
  const command = ['-d', '-F', 'MSG %t %p', ...args];
  const child =
    stdbuf === undefined
      ? spawn(sub!, command, { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(stdbuf, ['-oL', sub!, ...command], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    err += chunk;
  });
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    out += chunk;
  });
  // 'close', not 'exit': the process may exit before its last stdout bytes are read.
  const done = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const deadline = Date.now() + 10_000;
  while (!out.includes('SUBACK')) {
    if (Date.now() > deadline || child.exitCode !== null)
      throw new Error(`mosquitto_sub did not subscribe: ${out} ${err}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {
    child,
    lines: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('MSG '))
        .map((l) => l.slice(4)),
    done,
  };
}

describe('interop: mosquitto_pub / mosquitto_sub against the otalink broker', () => {
  let broker: Broker;
  let certs: TestCertificates | undefined;
  let port = 0;
  let tlsPort = 0;
  let mtlsPort = 0;
  before(async () => {
    certs = makeCertificates();
    const tls = certs && { cert: certs.serverCert, key: certs.serverKey };
    broker = createBroker({
      listeners: [
        { protocol: 'mqtt', host: '127.0.0.1', port: 0 },
        ...(tls === undefined
          ? []
          : [
              { protocol: 'mqtts' as const, host: '127.0.0.1', port: 0, tls },
              {
                protocol: 'mqtts' as const,
                host: '127.0.0.1',
                port: 0,
                tls: { ...tls, ca: certs!.ca, requireClientCertificate: true, identityFromCertificate: true },
              },
            ]),
      ],
      allowAnonymous: true,
      logger: pino({ level: 'silent' }),
      sysIntervalSeconds: 0,
    });
    await broker.listen();
    const addresses = broker.addresses();
    port = addresses[0]!.port;
    tlsPort = addresses[1]?.port ?? 0;
    mtlsPort = addresses[2]?.port ?? 0;
  });
  after(async () => {
    await broker.close();
    certs?.remove();
  });

  for (const V of ['311', '5'] as const) {
    for (const qos of ['0', '1', '2'] as const) {
      test(`-V ${V} QoS ${qos}: mosquitto_sub receives what mosquitto_pub sent`, async (t) => {
        if (!requireProgram(t, 'mosquitto_sub', 'mosquitto-clients')) return;
        const topic = `interop/${V}/${qos}`;
        const s = await subscriber(['-V', V, '-p', String(port), '-h', '127.0.0.1', '-t', topic, '-q', qos, '-C', '1']);
        const r = await run(pub!, [
          '-V',
          V,
          '-p',
          String(port),
          '-h',
          '127.0.0.1',
          '-t',
          topic,
          '-q',
          qos,
          '-m',
          `hello ${qos}`,
        ]);
        assert.equal(r.code, 0, r.stderr);
        await s.done;
        assert.deepEqual(s.lines(), [`${topic} hello ${qos}`]);
      });
    }

    test(`-V ${V}: retained message delivered to a later subscriber, then cleared`, async (t) => {
      if (!requireProgram(t, 'mosquitto_sub', 'mosquitto-clients')) return;
      const topic = `interop/${V}/retained`;
      const base = ['-V', V, '-p', String(port), '-h', '127.0.0.1', '-t', topic];
      assert.equal((await run(pub!, [...base, '-r', '-q', '1', '-m', 'kept'])).code, 0);
      const got = await run(sub!, [...base, '-C', '1', '-W', '5', '-F', '%r %p']);
      assert.equal(got.stdout.trim(), '1 kept');
      assert.equal((await run(pub!, [...base, '-r', '-n'])).code, 0);
      const none = await run(sub!, [...base, '-C', '1', '-W', '1']);
      assert.equal(none.stdout.trim(), '');
    });

    test(`-V ${V}: the will of a killed client is published`, async (t) => {
      if (!requireProgram(t, 'mosquitto_sub', 'mosquitto-clients')) return;
      const topic = `interop/${V}/will`;
      const watcher = await subscriber(['-V', V, '-p', String(port), '-h', '127.0.0.1', '-t', topic, '-C', '1']);
      const dying = await subscriber([
        '-V',
        V,
        '-p',
        String(port),
        '-h',
        '127.0.0.1',
        '-t',
        'interop/nothing',
        '--will-topic',
        topic,
        '--will-payload',
        'died',
        '--will-qos',
        '1',
      ]);
      dying.child.kill('SIGKILL');
      await watcher.done;
      assert.deepEqual(watcher.lines(), [`${topic} died`]);
    });

    test(`-V ${V}: persistent session (-c) receives QoS 1 messages sent while it was away`, async (t) => {
      if (!requireProgram(t, 'mosquitto_sub', 'mosquitto-clients')) return;
      const topic = `interop/${V}/persist`;
      const id = `persist-${V}`;
      const base = ['-V', V, '-p', String(port), '-h', '127.0.0.1'];
      const session = V === '5' ? ['-x', '300'] : [];
      const first = await run(sub!, [...base, ...session, '-c', '-i', id, '-q', '1', '-t', topic, '-E']);
      assert.equal(first.code, 0, first.stderr);
      assert.equal((await run(pub!, [...base, '-t', topic, '-q', '1', '-m', 'while away'])).code, 0);
      const back = await run(sub!, [...base, ...session, '-c', '-i', id, '-q', '1', '-t', topic, '-C', '1', '-W', '5']);
      assert.equal(back.stdout.trim(), 'while away');
    });

    test(`-V ${V}: shared subscription splits messages between two mosquitto_sub`, async (t) => {
      if (!requireProgram(t, 'mosquitto_sub', 'mosquitto-clients')) return;
      const filter = `$share/grp${V}/interop/${V}/shared`;
      const base = ['-V', V, '-p', String(port), '-h', '127.0.0.1'];
      const a = await subscriber([...base, '-t', filter, '-q', '1']);
      const b = await subscriber([...base, '-t', filter, '-q', '1']);
      for (let i = 0; i < 6; i++) {
        assert.equal((await run(pub!, [...base, '-t', `interop/${V}/shared`, '-q', '1', '-m', `m${i}`])).code, 0);
      }
      // A bound for two child processes on a loaded machine, not a speed: the loop ends once all six are in.
      const deadline = Date.now() + 20_000;
      while (a.lines().length + b.lines().length < 6 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      a.child.kill();
      b.child.kill();
      await Promise.all([a.done, b.done]);
      assert.equal(a.lines().length + b.lines().length, 6);
      assert.ok(a.lines().length > 0 && b.lines().length > 0, 'one member got everything');
    });

    test(`-V ${V}: TLS with --cafile, and mutual TLS with --cert/--key`, async (t) => {
      if (!requireProgram(t, 'mosquitto_sub', 'mosquitto-clients')) return;
      if (certs === undefined) return t.skip('openssl CLI not installed');
      const topic = `interop/${V}/tls`;
      const tlsBase = ['-V', V, '-h', 'localhost', '--cafile', certs.caPath];
      const s = await subscriber([...tlsBase, '-p', String(tlsPort), '-t', topic, '-C', '1', '-q', '1']);
      const client = certs.client('mosquitto-client');
      const mutual = [...tlsBase, '-p', String(mtlsPort), '--cert', client.certPath, '--key', client.keyPath];
      const r = await run(pub!, [...mutual, '-t', topic, '-q', '1', '-m', 'over mtls']);
      assert.equal(r.code, 0, r.stderr);
      await s.done;
      assert.deepEqual(s.lines(), [`${topic} over mtls`]);
      // Without a client certificate the mutual TLS listener refuses.
      const refused = await run(pub!, [...tlsBase, '-p', String(mtlsPort), '-t', topic, '-m', 'x'], 5000);
      assert.notEqual(refused.code, 0);
    });
  }
});
