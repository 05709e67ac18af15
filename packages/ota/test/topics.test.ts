import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isValidTopicFilter, isValidTopicName, parseSharedSubscription, topicMatches } from '@otalink/mqtt/topic';
import { OtaError } from '../src/errors.js';
import { isValidVin, OtaTopics } from '../src/topics.js';

const VIN = 'WVWZZZ1JZXW000001';

describe('VIN validation', () => {
  const cases: Array<[string, boolean, boolean]> = [
    // vin, strict, simulation
    [VIN, true, true],
    ['1HGCM82633A004352', true, true],
    ['WVWZZZ1JZXW00000', false, true], // 16 characters
    ['WVWZZZ1JZXW0000012', false, true], // 18 characters
    ['WVWZZZ1JZXW00000I', false, true], // I is not in the ISO 3779 alphabet
    ['WVWZZZ1JZXW00000O', false, true],
    ['WVWZZZ1JZXW00000Q', false, true],
    ['wvwzzz1jzxw000001', false, true], // lower case
    ['SIM-000042', false, true],
    ['sim_7', false, true],
    ['', false, false],
    ['WVWZZZ1JZXW00000+', false, false],
    ['WVWZZZ1JZXW00000#', false, false],
    ['WVWZZZ1JZXW0000/1', false, false],
    ['SIM+1', false, false],
    ['SIM#', false, false],
    ['SIM/1', false, false],
    ['a/+/b', false, false],
    ['-SIM', false, false],
    ['SIM\u0000', false, false],
    ['SIM 1', false, false],
    ['fleet', false, false], // reserved level
    ['FLEET', false, false],
    ['x'.repeat(64), false, true],
    ['x'.repeat(65), false, false],
    ['ÄBC', false, false],
  ];
  for (const [vin, strict, simulation] of cases) {
    test(`${JSON.stringify(vin)}: strict ${strict}, simulation ${simulation}`, () => {
      assert.equal(isValidVin(vin), strict);
      assert.equal(isValidVin(vin, 'strict'), strict);
      assert.equal(isValidVin(vin, 'simulation'), simulation);
    });
  }
});

describe('topic builders', () => {
  test('default prefix', () => {
    const topics = new OtaTopics();
    assert.equal(topics.command(VIN), `ota/${VIN}/command`);
    assert.equal(topics.status(VIN), `ota/${VIN}/status`);
    assert.equal(topics.request(VIN), `ota/${VIN}/request`);
    assert.equal(topics.presence(VIN), `ota/${VIN}/presence`);
    assert.equal(topics.fleetStatus('ID.4'), 'ota/fleet/ID.4/status');
    assert.equal(topics.backendStatusSubscription(), '$share/otalink-backend/ota/+/status');
    assert.equal(topics.backendRequestSubscription(), '$share/otalink-backend/ota/+/request');
    assert.equal(topics.presenceSubscription(), 'ota/+/presence');
  });

  test('configured prefix and share name', () => {
    const topics = new OtaTopics({ prefix: 'oem/eu', backendGroup: 'b2' });
    assert.equal(topics.status(VIN), `oem/eu/${VIN}/status`);
    assert.equal(topics.fleetStatus('m'), 'oem/eu/fleet/m/status');
    assert.equal(topics.backendStatusSubscription(), '$share/b2/oem/eu/+/status');
  });

  test('every built name and filter is valid MQTT and the filters match the names', () => {
    const topics = new OtaTopics();
    for (const name of [topics.command(VIN), topics.status(VIN), topics.presence(VIN), topics.fleetStatus('m')]) {
      assert.ok(isValidTopicName(name), name);
    }
    const shared = parseSharedSubscription(topics.backendStatusSubscription());
    assert.ok(shared);
    assert.equal(shared.group, 'otalink-backend');
    assert.ok(isValidTopicFilter(shared.filter));
    assert.ok(topicMatches(shared.filter, topics.status(VIN)));
    assert.ok(!topicMatches(shared.filter, topics.fleetStatus('m')), 'fleet summaries are not vehicle status');
    assert.ok(topicMatches(topics.presenceSubscription(), topics.presence(VIN)));
  });

  const invalidVins = ['', 'SIM+1', 'SIM#', 'A/B', '+', '#', `${VIN}/x`, 'fleet', 'SIM\u0000'];
  for (const vin of invalidVins) {
    test(`builders refuse VIN ${JSON.stringify(vin)} in both modes`, () => {
      for (const vinMode of ['strict', 'simulation'] as const) {
        const topics = new OtaTopics({ vinMode });
        for (const build of [topics.command, topics.status, topics.request, topics.presence]) {
          assert.throws(
            () => build.call(topics, vin),
            (e: unknown) => e instanceof OtaError && e.code === 'OTA_ERR_INVALID_VIN',
          );
        }
      }
    });
  }

  test('strict mode refuses test ids, simulation mode accepts them', () => {
    assert.throws(() => new OtaTopics().command('SIM-1'), { code: 'OTA_ERR_INVALID_VIN' });
    assert.equal(new OtaTopics({ vinMode: 'simulation' }).command('SIM-1'), 'ota/SIM-1/command');
  });

  for (const model of ['', 'a/b', '+', '#', '.x', 'a b']) {
    test(`fleetStatus refuses model ${JSON.stringify(model)}`, () => {
      assert.throws(() => new OtaTopics().fleetStatus(model), { code: 'OTA_ERR_INVALID_TOPIC' });
    });
  }

  for (const prefix of ['', '$SYS', 'a/+', 'a/#', '/ota', 'ota/', 'a//b']) {
    test(`refuses prefix ${JSON.stringify(prefix)}`, () => {
      assert.throws(() => new OtaTopics({ prefix }), { code: 'OTA_ERR_INVALID_TOPIC' });
    });
  }

  test('refuses a share name with wildcards or slashes', () => {
    for (const backendGroup of ['', 'a/b', '+', '#']) {
      assert.throws(() => new OtaTopics({ backendGroup }), { code: 'OTA_ERR_INVALID_TOPIC' });
    }
  });
});

describe('topic parser', () => {
  const topics = new OtaTopics();
  const sim = new OtaTopics({ vinMode: 'simulation', prefix: 'x/y' });
  const cases: Array<[OtaTopics, string, ReturnType<OtaTopics['parse']>]> = [
    [topics, `ota/${VIN}/command`, { kind: 'command', vin: VIN }],
    [topics, `ota/${VIN}/status`, { kind: 'status', vin: VIN }],
    [topics, `ota/${VIN}/request`, { kind: 'request', vin: VIN }],
    [topics, `ota/${VIN}/presence`, { kind: 'presence', vin: VIN }],
    [topics, 'ota/fleet/ID.4/status', { kind: 'fleet-status', model: 'ID.4' }],
    [topics, 'ota/SIM-1/status', undefined], // test id in strict mode
    [topics, `ota/${VIN}/other`, undefined],
    [topics, `ota/${VIN}/status/extra`, undefined],
    [topics, `other/${VIN}/status`, undefined],
    [topics, `ota/${VIN}`, undefined],
    [topics, 'ota/fleet/ID.4/other', undefined],
    [topics, 'ota/fleet/a b/status', undefined],
    [topics, '', undefined],
    [sim, 'x/y/SIM-1/status', { kind: 'status', vin: 'SIM-1' }],
    [sim, 'x/y/fleet/m/status', { kind: 'fleet-status', model: 'm' }],
    [sim, 'x/SIM-1/status', undefined],
    [sim, 'x/y/fleet/status', undefined], // `fleet` is never a VIN
  ];
  for (const [t, topic, expected] of cases) {
    test(`${t.prefix}: ${JSON.stringify(topic)}`, () => {
      assert.deepEqual(t.parse(topic), expected);
    });
  }

  test('parse inverts every builder', () => {
    for (const kind of ['command', 'status', 'request', 'presence'] as const) {
      assert.deepEqual(sim.parse(sim[kind]('SIM-9')), { kind, vin: 'SIM-9' });
    }
  });
});
