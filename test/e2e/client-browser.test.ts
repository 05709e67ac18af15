// Our MQTT client in a real browser. esbuild bundles it as a web app would (ESM, platform browser, nothing marked
// external: the package's "browser" field has to keep Node's modules out, or the build fails), a loopback HTTP
// server serves the page and the bundle, Debian's Chromium (driven by playwright-core) loads them, and the client
// talks to our broker's WebSocket listener through the browser's own WebSocket. On the other end is a Node client
// over TCP: QoS 0, 1 and 2 both ways in 3.1.1 and 5.0, payload bytes intact, a 5.0 user property, a retained
// message, an iterator behind a flood staying bounded over a WebSocket that cannot pause, and mqtt:// refused in
// the page with an error that says what to use instead.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { createBroker } from '@otalink/broker';
import * as esbuild from 'esbuild';
import { pino } from 'pino';
import { type Browser, chromium, type Page } from 'playwright-core';
import { connect, type Message } from '../../packages/mqtt/src/index.js';
import { requireProgram } from '../support/system.js';

const ROOT = new URL('../../', import.meta.url).pathname;

/** What the page returns from one exchange (payloads as plain arrays: they cross the page boundary as JSON). */
interface PageResult {
  publishCodes: number[];
  received: Array<{ topic: string; payload: number[]; qos: number; retain: boolean; user?: string[][] }>;
}

async function bundleClient(): Promise<string> {
  const result = await esbuild.build({
    stdin: {
      contents:
        "import * as mqtt from './packages/mqtt/src/index.ts'; (globalThis as Record<string, unknown>).otalinkMqtt = mqtt;",
      resolveDir: ROOT,
      loader: 'ts',
    },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  const code = result.outputFiles[0]?.text ?? '';
  assert.doesNotMatch(code, /\bfrom\s*["']node:/, 'no import of a Node module is left in the browser bundle');
  return code;
}

function servePage(bundle: string): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === '/client.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(bundle);
    } else {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>otalink client</title><script type="module" src="/client.js"></script>');
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/**
 * In the page: connect over ws://, subscribe to `in/#` (QoS 2) and `retained/#`, tell the Node side we are ready (by
 * publishing `from/ready`), publish QoS 0/1/2 to `from/q<n>`, collect `expected` messages, end.
 */
function exchangeInPage(page: Page, url: string, version: 4 | 5, prefix: string, expected: number) {
  return page.evaluate(
    async ({ url, version, prefix, expected }) => {
      type Mqtt = typeof import('../../packages/mqtt/src/index.js');
      const mqtt = (globalThis as unknown as { otalinkMqtt: Mqtt }).otalinkMqtt;
      const client = await mqtt.connect(url, { protocolVersion: version, reconnect: false });
      const received: PageResult['received'] = [];
      let done: () => void = () => {};
      const all = new Promise<void>((resolve) => {
        done = resolve;
      });
      client.on('message', (m) => {
        const user = m.properties?.userProperties?.map(([k, v]) => [k, v]);
        received.push({ topic: m.topic, payload: Array.from(m.payload), qos: m.qos, retain: m.retain, user });
        if (received.length === expected) done();
      });
      await client.subscribe([
        { topicFilter: `${prefix}/in/#`, qos: 2 },
        { topicFilter: `${prefix}/retained/#`, qos: 1 },
      ]);
      await client.publish(`${prefix}/from/ready`, 'ready', { qos: 1 });
      const publishCodes: number[] = [];
      for (const qos of [0, 1, 2] as const) {
        const properties = version === 5 ? { userProperties: [['from', 'browser']] as Array<[string, string]> } : {};
        const r = await client.publish(`${prefix}/from/q${qos}`, new Uint8Array([qos, 0x00, 0xff, 0x80]), {
          qos,
          properties,
        });
        publishCodes.push(r.reasonCode);
      }
      await all;
      await client.end();
      return { publishCodes, received } satisfies PageResult;
    },
    { url, version, prefix, expected },
  );
}

test('the client bundled for a browser runs in Chromium over WebSocket: QoS 0/1/2 both ways, 3.1.1 and 5.0', {
  timeout: 120_000,
}, async (t) => {
  const executablePath = requireProgram(t, 'chromium');
  if (!executablePath) return;
  const bundle = await bundleClient();
  const broker = createBroker({
    listeners: [
      { protocol: 'mqtt', host: '127.0.0.1', port: 0 },
      { protocol: 'ws', host: '127.0.0.1', port: 0, path: '/mqtt' },
    ],
    allowAnonymous: true,
    logger: pino({ level: 'silent' }),
    sysIntervalSeconds: 0,
  });
  await broker.listen();
  const [tcp, ws] = broker.addresses();
  assert.ok(tcp && ws);
  const server = await servePage(bundle);
  let browser: Browser | undefined;
  try {
    browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-gpu'] });
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    // tsx compiles the functions given to page.evaluate with esbuild's keepNames, which calls a __name helper
    // that only exists in Node: the page gets a no-op one.
    await page.addInitScript({ content: 'globalThis.__name = (f) => f;' });
    await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    await page.waitForFunction(() => 'otalinkMqtt' in globalThis, undefined, { timeout: 30_000 });

    for (const version of [4, 5] as const) {
      const prefix = `browser-v${version}`;
      const node = await connect({ host: '127.0.0.1', port: tcp.port, protocolVersion: version, reconnect: false });
      try {
        const fromBrowser: Message[] = [];
        let ready: () => void = () => {};
        const browserReady = new Promise<void>((resolve) => {
          ready = resolve;
        });
        node.on('message', (m) => {
          if (m.topic.endsWith('/ready')) ready();
          else fromBrowser.push(m);
        });
        await node.subscribe(`${prefix}/from/#`, { qos: 2 });
        await node.publish(`${prefix}/retained/state`, 'kept', { qos: 1, retain: true });

        // 3 messages from Node at QoS 0/1/2 and the retained one.
        const inPage = exchangeInPage(page, `ws://127.0.0.1:${ws.port}/mqtt`, version, prefix, 4);
        // The page failing before it is ready must fail the test, not leave it waiting.
        await Promise.race([browserReady, inPage]);
        for (const qos of [0, 1, 2] as const) {
          await node.publish(`${prefix}/in/q${qos}`, new Uint8Array([0x80 + qos, 0x00, 0x0a]), { qos });
        }
        const result = await inPage;

        assert.deepEqual(result.publishCodes, [0, 0, 0], 'QoS 0 resolves at once; PUBACK and PUBCOMP with success');
        const byTopic = new Map(result.received.map((m) => [m.topic, m]));
        assert.deepEqual(byTopic.get(`${prefix}/retained/state`)?.payload, Array.from(Buffer.from('kept')));
        assert.equal(byTopic.get(`${prefix}/retained/state`)?.retain, true);
        for (const qos of [0, 1, 2]) {
          const m = byTopic.get(`${prefix}/in/q${qos}`);
          assert.ok(m, `the page received the QoS ${qos} message`);
          assert.deepEqual(m.payload, [0x80 + qos, 0x00, 0x0a]);
          assert.equal(m.qos, qos);
        }
        await waitFor(() => fromBrowser.length === 3);
        for (const qos of [0, 1, 2]) {
          const m = fromBrowser.find((x) => x.topic === `${prefix}/from/q${qos}`);
          assert.ok(m, `Node received the page's QoS ${qos} message`);
          assert.deepEqual(Array.from(m.payload), [qos, 0x00, 0xff, 0x80]);
          assert.equal(m.qos, qos);
          if (version === 5) assert.deepEqual(m.properties?.userProperties, [['from', 'browser']]);
        }
        await node.publish(`${prefix}/retained/state`, new Uint8Array(0), { qos: 1, retain: true });
      } finally {
        await node.end({ force: true });
      }
    }

    // A browser's WebSocket cannot pause: the client reads on, and an iterator behind is bounded by held acks
    // (the broker's window of 100 stops QoS 1) and QoS 0 drops at twice the mark, every QoS 1 message then read.
    const backend = await connect({ host: '127.0.0.1', port: tcp.port, protocolVersion: 5, reconnect: false });
    try {
      let ready: () => void = () => {};
      const pageReady = new Promise<void>((resolve) => {
        ready = resolve;
      });
      backend.on('message', () => ready());
      await backend.subscribe('flood-ready', { qos: 1 });
      // Started once the backend listens: the page's 'ready' must not go out before anyone is subscribed to it.
      const flood = page.evaluate(
        async ({ url }) => {
          const mqtt = (globalThis as unknown as { otalinkMqtt: typeof import('../../packages/mqtt/src/index.js') })
            .otalinkMqtt;
          const client = await mqtt.connect(url, { protocolVersion: 5, reconnect: false, highWaterMark: 5 });
          const sub = await client.subscribe('flood/#', { qos: 1 });
          const stream = sub.messages();
          let most = 0;
          client.on('message', () => {
            most = Math.max(most, client.bufferedCount);
          });
          await client.publish('flood-ready', 'ready', { qos: 1 });
          // Until the flood has come and nothing more comes: the held acks have stopped the broker (bounded: a
          // flood that never comes fails below).
          for (let last = -1, rounds = 0; rounds < 60; rounds++) {
            await new Promise((r) => setTimeout(r, 300));
            if (client.bufferedCount === last && last > 0) break;
            last = client.bufferedCount;
          }
          const behind = { most, dropped: client.droppedCount, paused: client.readingPaused };
          const commands: string[] = [];
          // Bounded: a message that never comes fails the test with what was read, not by its timeout.
          const iterator = stream[Symbol.asyncIterator]();
          let stalled: string | undefined;
          while (commands.length < 300) {
            let timer: ReturnType<typeof setTimeout> | undefined;
            const next = await Promise.race([
              iterator.next(),
              new Promise<'stalled'>((r) => {
                timer = setTimeout(() => r('stalled'), 20_000);
              }),
            ]);
            clearTimeout(timer);
            if (next === 'stalled' || next.done === true) {
              stalled = `${next === 'stalled' ? 'nothing for 20 s' : 'the stream ended'}: state ${client.state}, buffered ${client.bufferedCount}`;
              break;
            }
            if (next.value.qos === 1) commands.push(new TextDecoder().decode(next.value.payload));
          }
          await client.end({ force: stalled !== undefined });
          return { ...behind, commands, stalled };
        },
        { url: `ws://127.0.0.1:${ws.port}/mqtt` },
      );
      await Promise.race([pageReady, flood]);
      const sent: Promise<unknown>[] = [];
      for (let i = 0; i < 300; i++) {
        sent.push(backend.publish('flood/cmd', `${i}`, { qos: 1 }));
        sent.push(backend.publish('flood/status', `${i}`, { qos: 0 }), backend.publish('flood/status', `${i}`));
      }
      await Promise.all(sent);
      const result = await flood;
      assert.equal(result.stalled, undefined, `after ${result.commands.length} commands: ${result.stalled}`);
      assert.equal(result.paused, false, 'reading never paused');
      assert.ok(result.most <= 2 * 5 + 100, `at most ${2 * 5 + 100} buffered, saw ${result.most}`);
      assert.ok(result.dropped > 0, 'QoS 0 dropped for the iterator behind');
      assert.deepEqual(
        result.commands,
        Array.from({ length: 300 }, (_, i) => `${i}`),
        'every QoS 1 message, in order',
      );
    } finally {
      await backend.end({ force: true });
    }

    const refused = await page.evaluate(async (port) => {
      const mqtt = (globalThis as unknown as { otalinkMqtt: typeof import('../../packages/mqtt/src/index.js') })
        .otalinkMqtt;
      try {
        await mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnect: false });
        return 'connected';
      } catch (err) {
        return `${(err as { code?: string }).code}: ${(err as Error).message}`;
      }
    }, tcp.port);
    assert.match(refused, /^MQTT_ERR_INVALID_OPTION: mqtt:\/\/ needs a TCP socket.*use ws:\/\/ or wss:\/\//);
    assert.deepEqual(pageErrors, []);
  } finally {
    await browser?.close();
    await new Promise((resolve) => server.close(resolve));
    await broker.close();
  }
});

async function waitFor(condition: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
