// Interop: Eclipse Paho C (Debian's libpaho-mqtt-dev, the C client many TCUs embed) against our broker, MQTT 3.1.1
// and 5.0. A small peer (paho-c/peer.c) is compiled at test time and run as separate processes: every QoS in
// order, retained, will on SIGKILL, a persistent session that queues while offline, a shared subscription, 5.0
// properties passed through, TLS and mutual TLS, and Paho's own file persistence: a QoS 2 publisher killed with a
// message unacknowledged resends it (DUP) on restart and the subscriber gets every message exactly once.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Broker } from '../../packages/broker/src/index.js';
import { makeCertificates, type TestCertificates } from '../../packages/broker/test/support/certs.js';
import { interopBroker } from '../support/interop-broker.js';
import { findProgram } from '../support/system.js';

interface PeerEvent {
  event: 'connected' | 'subscribed' | 'published' | 'message' | 'error' | 'done';
  rc?: number;
  sessionPresent?: number;
  topic?: string;
  payload?: string;
  qos?: number;
  retained?: number;
  properties?: Array<[number, ...Array<string | number>]>;
  what?: string;
}

interface Peer {
  events: PeerEvent[];
  /** Resolves once an event of this kind was printed (rejects if the peer exits first). */
  until(kind: PeerEvent['event']): Promise<void>;
  /** Resolves with the exit code (or the signal's name) when the peer exits. */
  exit: Promise<number | string>;
  child: ChildProcess;
}

const PEER_SOURCE = new URL('./paho-c/peer.c', import.meta.url).pathname;
const HEADER = '/usr/include/MQTTClient.h';

/** Why the Paho C peer cannot be built here, or undefined when it can. */
function missing(): string | undefined {
  if (findProgram('gcc') === undefined) return 'gcc not installed (apt-get install gcc libc6-dev)';
  if (!existsSync(HEADER)) return 'Paho C not installed (apt-get install libpaho-mqtt-dev)';
  return undefined;
}

describe('interop: Eclipse Paho C against the otalink broker', () => {
  let broker: Broker;
  let certs: TestCertificates | undefined;
  let work = '';
  let binary = '';
  const absent = missing();
  const running = new Set<ChildProcess>();

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'otalink-paho-c-'));
    if (absent === undefined) {
      binary = join(work, 'peer');
      execFileSync('gcc', ['-O1', '-Wall', '-o', binary, PEER_SOURCE, '-lpaho-mqtt3cs'], { stdio: 'pipe' });
    }
    certs = makeCertificates();
    broker = await interopBroker(certs);
  });

  after(async () => {
    for (const child of running) child.kill('SIGKILL');
    await broker?.close();
    certs?.remove();
    rmSync(work, { recursive: true, force: true });
  });

  const skip = (t: { skip(reason: string): void }): boolean => {
    if (absent === undefined) return false;
    // .ci/run installs both: in CI a missing one is a failure, never a silent skip.
    if (process.env.CI === 'true') throw new Error(`${absent}; .ci/run should have installed it`);
    t.skip(absent);
    return true;
  };

  const tcp = () => `tcp://127.0.0.1:${broker.addresses()[0]!.port}`;

  function peer(args: string[], timeoutMs = 20_000): Peer {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    const events: PeerEvent[] = [];
    const waiters: Array<{ kind: PeerEvent['event']; resolve: () => void; reject: (e: Error) => void }> = [];
    let stderr = '';
    let buffered = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.stdout!.on('data', (d: Buffer) => {
      buffered += d.toString();
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        const event = JSON.parse(line) as PeerEvent;
        events.push(event);
        for (const w of waiters.filter((w) => w.kind === event.event)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    });
    // Bounded: a peer that hangs is killed, and whoever waits on it fails with what it printed.
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    // 'close', not 'exit': 'exit' can come before the last of the peer's output has been read.
    const exit = new Promise<number | string>((resolve) => {
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        running.delete(child);
        const why = `paho-c peer ${args.join(' ')} exited (${code ?? signal}) before that; printed:\n${events
          .map((e) => JSON.stringify(e))
          .join('\n')}\n${stderr}`;
        for (const w of waiters.splice(0)) w.reject(new Error(why));
        resolve(code ?? signal ?? -1);
      });
    });
    const until = (kind: PeerEvent['event']) =>
      events.some((e) => e.event === kind)
        ? Promise.resolve()
        : new Promise<void>((resolve, reject) => waiters.push({ kind, resolve, reject }));
    return { events, until, exit, child };
  }

  /** Runs a peer to its end and returns what it printed; it must exit 0. */
  async function run(args: string[]): Promise<PeerEvent[]> {
    const p = peer(args);
    const code = await p.exit;
    assert.equal(code, 0, `paho-c peer ${args.join(' ')} exited ${code}: ${JSON.stringify(p.events)}`);
    return p.events;
  }

  const messages = (events: PeerEvent[]) => events.filter((e) => e.event === 'message');

  for (const version of ['4', '5'] as const) {
    const v = version === '5' ? 'MQTT 5.0' : 'MQTT 3.1.1';
    const base = (id: string) => ['-u', tcp(), '-V', version, '-i', `pc${version}-${id}`];

    test(`${v}: QoS 0, 1 and 2 each arrive in order, QoS 2 exactly once`, async (t) => {
      if (skip(t)) return;
      const sub = peer([...base('sub'), '-m', 'sub', '-t', `pc/${version}/q/#`, '-q', '2', '-n', '30']);
      await sub.until('subscribed');
      for (const q of [0, 1, 2]) {
        await run([
          ...base(`pub${q}`),
          '-m',
          'pub',
          '-t',
          `pc/${version}/q/${q}`,
          '-q',
          String(q),
          '-n',
          '10',
          '-p',
          `q${q}-`,
        ]);
      }
      assert.equal(await sub.exit, 0);
      const got = messages(sub.events);
      for (const q of [0, 1, 2]) {
        const mine = got.filter((m) => m.topic === `pc/${version}/q/${q}`);
        assert.deepEqual(
          mine.map((m) => m.payload),
          Array.from({ length: 10 }, (_, i) => `q${q}-${i + 1}`),
        );
        assert.ok(mine.every((m) => m.qos === q && m.retained === 0));
      }
    });

    test(`${v}: a retained message reaches a later subscriber, flagged retained`, async (t) => {
      if (skip(t)) return;
      await run([...base('rpub'), '-m', 'pub', '-t', `pc/${version}/retained`, '-q', '1', '-r', '-p', 'kept-']);
      const got = messages(await run([...base('rsub'), '-m', 'sub', '-t', `pc/${version}/retained`, '-q', '1']));
      assert.deepEqual(
        got.map((m) => [m.payload, m.retained]),
        [['kept-1', 1]],
      );
    });

    test(`${v}: the will of a Paho client killed with SIGKILL is published`, async (t) => {
      if (skip(t)) return;
      const watch = peer([...base('watch'), '-m', 'sub', '-t', `pc/${version}/will`, '-q', '1']);
      await watch.until('subscribed');
      const doomed = peer([...base('doomed'), '-m', 'hold', '-w', `pc/${version}/will`]);
      await doomed.until('connected');
      doomed.child.kill('SIGKILL');
      assert.equal(await watch.exit, 0);
      assert.deepEqual(
        messages(watch.events).map((m) => [m.topic, m.payload, m.qos]),
        [[`pc/${version}/will`, 'paho-c gone', 1]],
      );
    });

    test(`${v}: a persistent session keeps its subscription and queues QoS 1 and 2 while the client is away`, async (t) => {
      if (skip(t)) return;
      const session = [...base('away'), '-c', '-x', '3600', '-m', 'sub', '-q', '2', '-t', `pc/${version}/away/#`];
      await run([...session, '-n', '0']);
      await run([...base('apub1'), '-m', 'pub', '-t', `pc/${version}/away/1`, '-q', '1', '-n', '5', '-p', 'one-']);
      await run([...base('apub2'), '-m', 'pub', '-t', `pc/${version}/away/2`, '-q', '2', '-n', '5', '-p', 'two-']);
      const back = await run([...session, '-s', '-n', '10']);
      if (version === '4') assert.equal(back[0]?.sessionPresent, 1);
      const got = messages(back);
      assert.deepEqual(
        got.filter((m) => m.qos === 1).map((m) => m.payload),
        ['one-1', 'one-2', 'one-3', 'one-4', 'one-5'],
      );
      assert.deepEqual(
        got.filter((m) => m.qos === 2).map((m) => m.payload),
        ['two-1', 'two-2', 'two-3', 'two-4', 'two-5'],
      );
    });

    for (const killAfter of [1, 4]) {
      test(`${v}: a QoS 2 publisher killed with publish ${killAfter} unacknowledged resends it from Paho's file store; delivered exactly once`, async (t) => {
        if (skip(t)) return;
        const dir = mkdtempSync(join(work, 'persist-'));
        const topic = `pc/${version}/crash/${killAfter}`;
        const sub = peer([
          ...base(`csub${killAfter}`),
          '-m',
          'sub',
          '-t',
          topic,
          '-q',
          '2',
          '-n',
          String(killAfter + 3),
        ]);
        await sub.until('subscribed');
        const publisher = [
          ...base(`cpub${killAfter}`),
          '-m',
          'pub',
          '-t',
          topic,
          '-q',
          '2',
          '-c',
          '-x',
          '3600',
          '-d',
          dir,
        ];
        const killed = peer([...publisher, '-n', '10', '-k', String(killAfter)]);
        assert.equal(await killed.exit, 'SIGKILL');
        assert.equal(
          killed.events.filter((e) => e.event === 'published').length,
          killAfter - 1,
          'the killed publisher saw the messages before the last one completed',
        );
        await run([...publisher, '-n', '3', '-p', 'after-']);
        assert.equal(await sub.exit, 0);
        const expected = [
          ...Array.from({ length: killAfter }, (_, i) => `m${i + 1}`),
          ...['after-1', 'after-2', 'after-3'],
        ];
        assert.deepEqual(
          messages(sub.events).map((m) => m.payload),
          expected,
        );
        // Nothing more arrives later (a second copy of the resent message would).
        const late = messages(
          await run([...base(`clate${killAfter}`), '-m', 'sub', '-t', topic, '-q', '2', '-n', '1', '-T', '300']),
        );
        assert.deepEqual(late, []);
      });
    }

    test(`${v}: a shared subscription splits the messages between its members, each once`, async (t) => {
      if (skip(t)) return;
      const filter = `$share/pc${version}/pc/${version}/shared`;
      // Neither member gets all 20, so each listens out its -T, counted from its SUBACK: time enough for the
      // publisher's start-up and its 20 round trips on a loaded machine (4 s once left little to spare).
      const a = peer([...base('sa'), '-m', 'sub', '-t', filter, '-q', '1', '-n', '20', '-T', '8000']);
      const b = peer([...base('sb'), '-m', 'sub', '-t', filter, '-q', '1', '-n', '20', '-T', '8000']);
      await Promise.all([a.until('subscribed'), b.until('subscribed')]);
      await run([...base('spub'), '-m', 'pub', '-t', `pc/${version}/shared`, '-q', '1', '-n', '20']);
      await Promise.all([a.exit, b.exit]);
      const payloads = [...messages(a.events), ...messages(b.events)].map((m) => m.payload!);
      assert.equal(payloads.length, 20);
      assert.equal(new Set(payloads).size, 20);
      assert.ok(messages(a.events).length > 0 && messages(b.events).length > 0, 'both members got some');
    });

    test(`${v}: TLS, mutual TLS with a client certificate, and no session without one`, async (t) => {
      if (skip(t)) return;
      if (certs === undefined) return t.skip('openssl could not make test certificates');
      const [, secure, mutual] = broker.addresses();
      const me = certs.client(`paho-c-${version}`);
      const tls = ['-V', version, '-a', certs.caPath];
      const sub = peer(['-u', `ssl://127.0.0.1:${secure!.port}`, ...tls, '-i', `pc${version}-tsub`, '-m', 'sub']);
      await sub.until('subscribed');
      await run([
        ...['-u', `ssl://127.0.0.1:${mutual!.port}`, ...tls, '-C', me.certPath, '-K', me.keyPath],
        ...['-i', `pc${version}-tpub`, '-m', 'pub', '-t', 'paho-c/t', '-q', '1', '-p', 'over-mtls-'],
      ]);
      assert.equal(await sub.exit, 0);
      assert.deepEqual(
        messages(sub.events).map((m) => m.payload),
        ['over-mtls-1'],
      );
      const refused = peer(['-u', `ssl://127.0.0.1:${mutual!.port}`, ...tls, '-i', `pc${version}-nocert`, '-m', 'pub']);
      assert.notEqual(await refused.exit, 0);
      assert.ok(
        !refused.events.some((e) => e.event === 'connected' && e.rc === 0),
        'no CONNACK 0 without a certificate',
      );
    });
  }

  test('MQTT 5.0: user properties (order and repeats), content type, response topic and message expiry pass through', async (t) => {
    if (skip(t)) return;
    const sub = peer(['-u', tcp(), '-V', '5', '-i', 'pc5-psub', '-m', 'sub', '-t', 'pc/5/props', '-q', '1']);
    await sub.until('subscribed');
    await run(['-u', tcp(), '-V', '5', '-i', 'pc5-ppub', '-m', 'pub', '-t', 'pc/5/props', '-q', '1', '-P']);
    assert.equal(await sub.exit, 0);
    const [message] = messages(sub.events);
    const properties = message?.properties ?? [];
    assert.deepEqual(
      properties.filter(([id]) => id === 38),
      [
        [38, 'vin', 'WVW0000000001'],
        [38, 'vin', 'second value, same name'],
      ],
    );
    assert.deepEqual(
      properties.filter(([id]) => id === 3 || id === 8),
      [
        [3, 'application/json'],
        [8, 'paho-c/reply'],
      ],
    );
    const expiry = properties.find(([id]) => id === 2)?.[1];
    assert.ok(typeof expiry === 'number' && expiry <= 600 && expiry >= 590, `message expiry ${expiry}`);
  });
});
