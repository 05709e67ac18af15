import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { OtaError } from '../src/errors.js';
import {
  COMMAND_TYPES,
  createMessage,
  encodeMessage,
  type JobStatus,
  type OtaMessage,
  parseMessage,
  STATUS_TYPES,
} from '../src/messages.js';

const MSG_ID = '0d4f7a52-8a5e-4d43-9a6b-2f1f0f1c9a01';
const status: JobStatus = {
  v: 1,
  msgId: MSG_ID,
  ts: 1_780_000_000_000,
  type: 'job.status',
  jobId: 'job-1',
  executionNumber: 1,
  seq: 3,
  status: 'IN_PROGRESS',
  step: 'DOWNLOADING',
  progress: 40,
  bytesDone: 400,
  bytesTotal: 1000,
};

// The doc's job.notify example, as a base for manifest-path errors.
const doc = readFileSync(new URL('../../../docs/ota-protocol.md', import.meta.url), 'utf8');
const notifyJson = /<!-- example: job.notify -->\n```json\n([\s\S]*?)\n```/.exec(doc)?.[1] as string;
const notify = JSON.parse(notifyJson) as Record<string, unknown>;

const json = (value: unknown) => JSON.stringify(value);
const withStatus = (patch: Record<string, unknown>) => json({ ...status, ...patch });
const without = (key: string) => {
  const copy: Record<string, unknown> = { ...status };
  delete copy[key];
  return json(copy);
};
const notifyWith = (mutate: (m: Record<string, unknown>) => void) => {
  const copy = JSON.parse(notifyJson) as Record<string, unknown>;
  mutate(copy);
  return json(copy);
};

describe('parseMessage refuses, naming the path', () => {
  const cases: Array<[string, string | Uint8Array, string, string]> = [
    // name, input, code, path
    ['empty string', '', 'OTA_ERR_INVALID_MESSAGE', ''],
    ['not JSON', '{"v":1,', 'OTA_ERR_INVALID_MESSAGE', ''],
    ['JSON array', '[1,2]', 'OTA_ERR_INVALID_MESSAGE', ''],
    ['JSON null', 'null', 'OTA_ERR_INVALID_MESSAGE', ''],
    ['JSON string', '"job.status"', 'OTA_ERR_INVALID_MESSAGE', ''],
    ['invalid UTF-8', new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), 'OTA_ERR_INVALID_MESSAGE', ''],
    ['missing v', without('v'), 'OTA_ERR_INVALID_MESSAGE', '/v'],
    ['v as a string', withStatus({ v: '1' }), 'OTA_ERR_INVALID_MESSAGE', '/v'],
    ['v fractional', withStatus({ v: 1.5 }), 'OTA_ERR_INVALID_MESSAGE', '/v'],
    ['v 2', withStatus({ v: 2 }), 'OTA_ERR_UNSUPPORTED_VERSION', '/v'],
    ['v 0', withStatus({ v: 0 }), 'OTA_ERR_UNSUPPORTED_VERSION', '/v'],
    ['missing type', without('type'), 'OTA_ERR_INVALID_MESSAGE', '/type'],
    ['unknown type', withStatus({ type: 'job.explode' }), 'OTA_ERR_UNKNOWN_TYPE', '/type'],
    ['inherited name as type', withStatus({ type: 'constructor' }), 'OTA_ERR_UNKNOWN_TYPE', '/type'],
    ['missing msgId', without('msgId'), 'OTA_ERR_INVALID_MESSAGE', '/msgId'],
    ['msgId not a UUID', withStatus({ msgId: 'abc' }), 'OTA_ERR_INVALID_MESSAGE', '/msgId'],
    ['negative ts', withStatus({ ts: -1 }), 'OTA_ERR_INVALID_MESSAGE', '/ts'],
    ['ts as string', withStatus({ ts: '1780000000000' }), 'OTA_ERR_INVALID_MESSAGE', '/ts'],
    ['missing jobId', without('jobId'), 'OTA_ERR_INVALID_MESSAGE', '/jobId'],
    ['jobId with a slash', withStatus({ jobId: 'a/b' }), 'OTA_ERR_INVALID_MESSAGE', '/jobId'],
    ['executionNumber 0', withStatus({ executionNumber: 0 }), 'OTA_ERR_INVALID_MESSAGE', '/executionNumber'],
    ['seq 0', withStatus({ seq: 0 }), 'OTA_ERR_INVALID_MESSAGE', '/seq'],
    ['seq fractional', withStatus({ seq: 1.5 }), 'OTA_ERR_INVALID_MESSAGE', '/seq'],
    ['backend-only status', withStatus({ status: 'CANCELED' }), 'OTA_ERR_INVALID_MESSAGE', '/status'],
    ['unknown step', withStatus({ step: 'FLASHING' }), 'OTA_ERR_INVALID_MESSAGE', '/step'],
    ['IN_PROGRESS without step', withStatus({ step: undefined }), 'OTA_ERR_INVALID_MESSAGE', '/step'],
    ['progress 101', withStatus({ progress: 101 }), 'OTA_ERR_INVALID_MESSAGE', '/progress'],
    ['progress -1', withStatus({ progress: -1 }), 'OTA_ERR_INVALID_MESSAGE', '/progress'],
    ['bytesDone above bytesTotal', withStatus({ bytesDone: 1001 }), 'OTA_ERR_INVALID_MESSAGE', '/bytesDone'],
    [
      'reason without code',
      withStatus({ status: 'FAILED', reason: { text: 'x' } }),
      'OTA_ERR_INVALID_MESSAGE',
      '/reason/code',
    ],
    [
      'reason code lower case',
      withStatus({ status: 'FAILED', reason: { code: 'oops', text: 'x' } }),
      'OTA_ERR_INVALID_MESSAGE',
      '/reason/code',
    ],
    [
      'installedVersion not semver',
      withStatus({ status: 'SUCCEEDED', installedVersion: 'v2' }),
      'OTA_ERR_INVALID_MESSAGE',
      '/installedVersion',
    ],
    [
      'manifest version not semver',
      notifyWith((m) => ((m.manifest as { manifest: { version: string } }).manifest.version = '2.1')),
      'OTA_ERR_INVALID_MESSAGE',
      '/manifest/manifest/version',
    ],
    [
      'manifest hardwareIds empty',
      notifyWith((m) => ((m.manifest as { manifest: { hardwareIds: string[] } }).manifest.hardwareIds = [])),
      'OTA_ERR_INVALID_MESSAGE',
      '/manifest/manifest/hardwareIds',
    ],
    [
      'manifest signature missing',
      notifyWith((m) => delete (m.manifest as { signature?: string }).signature),
      'OTA_ERR_INVALID_MESSAGE',
      '/manifest/signature',
    ],
    [
      'minBatteryPercent 150',
      notifyWith((m) => (m.preconditions = { minBatteryPercent: 150 })),
      'OTA_ERR_INVALID_MESSAGE',
      '/preconditions/minBatteryPercent',
    ],
    [
      'separateInstall missing',
      notifyWith((m) => delete m.separateInstall),
      'OTA_ERR_INVALID_MESSAGE',
      '/separateInstall',
    ],
    [
      'cancel without force',
      json({ v: 1, msgId: MSG_ID, ts: 1, type: 'job.cancel', jobId: 'j', executionNumber: 1 }),
      'OTA_ERR_INVALID_MESSAGE',
      '/force',
    ],
    [
      'sync token with a space',
      json({ v: 1, msgId: MSG_ID, ts: 1, type: 'sync', clientToken: 'a b' }),
      'OTA_ERR_INVALID_MESSAGE',
      '/clientToken',
    ],
    [
      'sync.result entry with QUEUED',
      json({
        v: 1,
        msgId: MSG_ID,
        ts: 1,
        type: 'sync.result',
        clientToken: 't',
        executions: [{ ...notify, status: 'QUEUED', lastSeq: 0, paused: false }],
      }),
      'OTA_ERR_INVALID_MESSAGE',
      '/executions/0/status',
    ],
    [
      'online presence without inventory',
      json({ v: 1, msgId: MSG_ID, ts: 1, type: 'presence', online: true }),
      'OTA_ERR_INVALID_MESSAGE',
      '/inventory',
    ],
    [
      'presence slot C',
      json({
        v: 1,
        msgId: MSG_ID,
        ts: 1,
        type: 'presence',
        online: true,
        inventory: {
          installedVersion: '1.0.0',
          hardwareId: 'h',
          agentVersion: '1',
          slots: { active: 'C', A: {}, B: {} },
        },
      }),
      'OTA_ERR_INVALID_MESSAGE',
      '/inventory/slots/active',
    ],
    [
      'fleet count negative',
      json({
        v: 1,
        msgId: MSG_ID,
        ts: 1,
        type: 'fleet.status',
        model: 'm',
        vehicles: 1,
        online: 0,
        versions: {},
        campaigns: [{ campaignId: 'c', state: 'RUNNING', counts: { FAILED: -1 } }],
      }),
      'OTA_ERR_INVALID_MESSAGE',
      '/campaigns/0/counts/FAILED',
    ],
  ];
  for (const [name, input, code, path] of cases) {
    test(`${name} → ${code} at ${JSON.stringify(path)}`, () => {
      const result = parseMessage(input);
      assert.ok(!result.ok, 'refused');
      assert.equal(result.error.code, code, result.error.text);
      assert.equal(result.error.path, path, result.error.text);
      assert.ok(result.error.text.length > 0);
    });
  }

  test('an enumeration error names the allowed values', () => {
    const result = parseMessage(withStatus({ step: 'FLASHING' }));
    assert.ok(!result.ok);
    assert.match(result.error.text, /expected one of "DOWNLOADING", "VERIFYING", "INSTALLING", "ACTIVATING"/);
  });

  test('the error carries the msgId once the envelope has one', () => {
    const result = parseMessage(withStatus({ progress: 101 }));
    assert.ok(!result.ok);
    assert.equal(result.error.msgId, MSG_ID);
    const bad = parseMessage(withStatus({ msgId: 'x', progress: 101 }));
    assert.ok(!bad.ok);
    assert.equal(bad.error.msgId, undefined);
  });
});

describe('parseMessage limits and options', () => {
  test('size cap, in bytes, before decoding', () => {
    const text = withStatus({ padding: 'x'.repeat(100) });
    const bytes = new TextEncoder().encode(text);
    assert.ok(parseMessage(bytes, { maxBytes: bytes.length }).ok);
    const over = parseMessage(bytes, { maxBytes: bytes.length - 1 });
    assert.ok(!over.ok);
    assert.equal(over.error.code, 'OTA_ERR_MESSAGE_TOO_LARGE');
    // Strings count UTF-8 bytes, not UTF-16 units: 'é' is 2 bytes.
    const accented = withStatus({ padding: 'é'.repeat(100) });
    const size = new TextEncoder().encode(accented).length;
    assert.ok(parseMessage(accented, { maxBytes: size }).ok);
    assert.equal(parseMessage(accented, { maxBytes: size - 1 }).ok, false);
    // Default 64 KiB.
    const big = parseMessage(withStatus({ padding: 'x'.repeat(65 * 1024) }));
    assert.ok(!big.ok);
    assert.equal(big.error.code, 'OTA_ERR_MESSAGE_TOO_LARGE');
  });

  test('types: a command topic refuses a status, a status topic accepts it', () => {
    const wrong = parseMessage(json(status), { types: COMMAND_TYPES });
    assert.ok(!wrong.ok);
    assert.equal(wrong.error.code, 'OTA_ERR_UNEXPECTED_TYPE');
    const right = parseMessage(json(status), { types: STATUS_TYPES });
    assert.ok(right.ok);
    assert.equal(right.message.seq, 3); // narrowed to JobStatus
  });

  test('unknown extra fields are tolerated and kept (forward compatibility)', () => {
    const result = parseMessage(withStatus({ temperatureC: 41, future: { nested: [1] } }));
    assert.ok(result.ok);
    assert.equal((result.message as unknown as { temperatureC: number }).temperatureC, 41);
  });

  test('a UTF-8 BOM is tolerated', () => {
    const bytes = new TextEncoder().encode(json(status));
    assert.ok(parseMessage(Uint8Array.from([0xef, 0xbb, 0xbf, ...bytes])).ok);
  });

  test('never throws: truncations, byte flips, random bytes, deep nesting, odd values', () => {
    const inputs: Array<string | Uint8Array> = [];
    for (let i = 0; i <= notifyJson.length; i += 7) inputs.push(notifyJson.slice(0, i));
    const bytes = new TextEncoder().encode(notifyJson);
    let seed = 42;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed;
    };
    for (let i = 0; i < 500; i++) {
      const copy = Uint8Array.from(bytes);
      copy[random() % copy.length] = random() % 256;
      inputs.push(copy);
      inputs.push(Uint8Array.from({ length: random() % 64 }, () => random() % 256));
    }
    inputs.push('['.repeat(20_000) + ']'.repeat(20_000));
    inputs.push(`{"v":1,"type":"job.status","jobId":${'['.repeat(10_000)}${']'.repeat(10_000)}}`);
    inputs.push(
      '{"v":1e400}',
      '{"v":1,"type":"sync","__proto__":{"clientToken":"x"}}',
      '{"v":1,"type":{"toString":1}}',
    );
    for (const input of inputs) {
      const result = parseMessage(input);
      assert.equal(typeof result.ok, 'boolean');
      if (!result.ok) assert.equal(typeof result.error.code, 'string');
    }
  });
});

describe('encodeMessage and createMessage', () => {
  test('round trip', () => {
    const message = createMessage('job.cancel', { jobId: 'j-1', executionNumber: 2, force: true }, { ts: 5 });
    assert.match(message.msgId, /^[0-9a-f-]{36}$/);
    const back = parseMessage(encodeMessage(message));
    assert.ok(back.ok);
    assert.deepEqual(back.message, message);
  });

  test('createMessage takes a given msgId and makes fresh ones otherwise', () => {
    assert.equal(createMessage('sync', { clientToken: 't' }, { ts: 1, msgId: MSG_ID }).msgId, MSG_ID);
    const a = createMessage('sync', { clientToken: 't' }, { ts: 1 });
    const b = createMessage('sync', { clientToken: 't' }, { ts: 1 });
    assert.notEqual(a.msgId, b.msgId);
  });

  test('refuses to encode an invalid message', () => {
    const bad = { ...status, progress: 150 } as OtaMessage;
    assert.throws(
      () => encodeMessage(bad),
      (e: unknown) => e instanceof OtaError && e.code === 'OTA_ERR_INVALID_MESSAGE',
    );
    const noStep = { ...status, step: undefined } as OtaMessage;
    assert.throws(() => encodeMessage(noStep), { code: 'OTA_ERR_INVALID_MESSAGE' });
  });
});
