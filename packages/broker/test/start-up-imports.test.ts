// What a plain MQTT broker loads at start-up. Run from source, every module costs a round trip through tsx's loader
// thread, so the optional parts (TLS and WebSocket listeners, the metrics endpoint, the MQTT client) are imported only
// when used; these checks keep a static import from bringing them back into every start.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

const root = new URL('../../../', import.meta.url).pathname;
const sources = new URL('../src/', import.meta.url).pathname;

// Prints which of these built-ins the process loaded once a broker with one mqtt listener is listening.
const probe = `
import { createBroker } from '@otalink/broker';
const broker = createBroker({
  listeners: [{ protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
  allowAnonymous: true,
  sysIntervalSeconds: 0,
  logger: (await import('pino')).pino({ level: 'silent' }),
});
await broker.listen();
const loaded = ['http', 'https', 'tls'].filter((name) => process.moduleLoadList.includes('NativeModule ' + name));
process.stdout.write(JSON.stringify(loaded));
await broker.close();
`;

test('a broker with only an mqtt listener loads neither node:http(s) (WebSocket, metrics) nor node:tls', async () => {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', join(root, 'bin/ts-loader.js'), '--input-type=module', '--eval', probe],
    { cwd: root, timeout: 60_000 },
  );
  assert.deepEqual(JSON.parse(stdout), []);
});

test('the broker imports @otalink/mqtt through its codec and topic subpaths, not the barrel with the client', () => {
  const barrelImports: string[] = [];
  for (const entry of readdirSync(sources, { recursive: true, encoding: 'utf8' })) {
    if (!entry.endsWith('.ts')) continue;
    const text = readFileSync(join(sources, entry), 'utf8');
    if (/from '@otalink\/mqtt(\/client)?'/.test(text)) barrelImports.push(entry);
  }
  assert.deepEqual(barrelImports, []);
});
