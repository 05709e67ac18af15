import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { findProgram } from '../../../test/support/system.js';
import { createAclAuthorizer, parseAcl } from '../src/auth/acl.js';
import { hashPassword } from '../src/auth/password-file.js';
import { BrokerConfigError } from '../src/config/errors.js';
import { GLOBAL_KEYS, LISTENER_KEYS } from '../src/config/keys.js';
import { loadBrokerConfig, resolveBrokerConfig } from '../src/config/load.js';
import { parseBrokerConfig } from '../src/config/parse.js';
import type { ClientIdentity } from '../src/options.js';

let dir = '';
let haveCerts = false;

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function expectConfigError(
  error: unknown,
  file: string | undefined,
  line: number | undefined,
  key: string,
  fragment: string,
): true {
  assert.ok(error instanceof BrokerConfigError, `expected BrokerConfigError, got ${String(error)}`);
  assert.equal(error.code, 'BROKER_ERR_CONFIG');
  assert.equal(error.file, file);
  assert.equal(error.line, line);
  assert.equal(error.key, key);
  if (file !== undefined) assert.ok(error.message.startsWith(`${file}:${line}: ${key}: `), error.message);
  assert.ok(error.message.includes(fragment), `"${error.message}" should include "${fragment}"`);
  return true;
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'otalink-config-'));
  const openssl = findProgram('openssl');
  if (openssl !== undefined) {
    const run = (args: string[]) => execFileSync(openssl, args, { cwd: dir, stdio: 'ignore' });
    run([
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '1',
      '-subj',
      '/CN=test-ca',
    ]);
    run([
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'server.key',
      '-out',
      'server.pem',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
    ]);
    run([
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'other.key',
      '-out',
      'other.pem',
      '-days',
      '1',
      '-subj',
      '/CN=other',
    ]);
    haveCerts = true;
  }
  write('not-a-cert.pem', 'hello\n');
  write('users.acl', 'user backend\ntopic ota/#\npattern readwrite ota/%u/#\n');
  write('bad.acl', 'user backend\ntopic ota/#\nfrobnicate x\n');
  write(
    'bad.passwd',
    '# users\nvin1:$scrypt$N=16384,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA==\nvin2:plaintext\n',
  );
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('bad configs name file, line and key', () => {
  // [config text, line, key, part of the message]
  const rows: [string, number, string, string][] = [
    ['max_connections abc', 1, 'max_connections', 'expected a positive integer, got "abc"'],
    ['# comment\n\nmax_connections 0', 3, 'max_connections', 'expected a positive integer, got 0'],
    ['max_connections -5', 1, 'max_connections', 'positive integer'],
    ['max_connections 1.5', 1, 'max_connections', 'positive integer'],
    ['max_connections', 1, 'max_connections', 'expected a value'],
    ['allow_anonymous yes', 1, 'allow_anonymous', 'expected true or false, got "yes"'],
    ['allow_anonymous true\nallow_anonymous false', 2, 'allow_anonymous', 'already set on line 1'],
    ['persistence true', 1, 'persistence', 'unknown key'],
    ['max_conections 10', 1, 'max_conections', 'did you mean max_connections?'],
    ['receive_maximum 0', 1, 'receive_maximum', 'from 1 to 65535'],
    ['receive_maximum 70000', 1, 'receive_maximum', 'from 1 to 65535'],
    ['max_packet_size 10', 1, 'max_packet_size', 'from 20 to 268435460'],
    ['max_packet_size 300000000', 1, 'max_packet_size', 'from 20 to 268435460'],
    ['queue_drop_policy random', 1, 'queue_drop_policy', 'expected one of oldest, newest, got "random"'],
    ['max_client_id_length 10', 1, 'max_client_id_length', 'from 23 to 65535'],
    ['max_publish_rate -1', 1, 'max_publish_rate', 'non-negative integer'],
    ['connect_timeout 0', 1, 'connect_timeout', 'from 1 to 86400'],
    ['max_keepalive 65536', 1, 'max_keepalive', 'from 0 to 65535'],
    ['topic_alias_maximum x', 1, 'topic_alias_maximum', 'from 0 to 65535'],
    ['max_session_expiry 4294967296', 1, 'max_session_expiry', 'from 0 to 4294967295'],
    ['sys_interval -1', 1, 'sys_interval', 'from 0 to 86400'],
    ['metrics_listener', 1, 'metrics_listener', 'expected a value'],
    ['metrics_listener 99999', 1, 'metrics_listener', 'from 0 to 65535'],
    ['metrics_listener 9100 127.0.0.1 extra', 1, 'metrics_listener', 'expected <port> [host]'],
    ['log_level verbose', 1, 'log_level', 'expected one of fatal, error, warn, info, debug, trace, silent'],
    ['listener abc', 1, 'listener', 'port number'],
    ['listener', 1, 'listener', 'expected <port> [host]'],
    ['listener 1883\nlistener 1883', 2, 'listener', 'overlaps the listener on all addresses (line 1)'],
    // All addresses take the specific one too: bind fails with EADDRINUSE, which reads as another process.
    ['listener 1883 127.0.0.1\nlistener 1883', 2, 'listener', 'overlaps the listener on 127.0.0.1 (line 1)'],
    ['listener 1883 ::\nlistener 1883 127.0.0.1', 2, 'listener', 'overlaps the listener on :: (line 1)'],
    ['listener 1883 0.0.0.0\nlistener 1883 10.0.0.5', 2, 'listener', 'overlaps the listener on 0.0.0.0 (line 1)'],
    ['protocol mqtt', 1, 'protocol', 'only valid inside a listener section'],
    ['certfile server.pem\nlistener 8883', 1, 'certfile', 'only valid inside a listener section'],
    ['listener 1883\nprotocol mqtt\nprotocol ws', 3, 'protocol', 'already set for this listener on line 2'],
    ['listener 1883\nprotocol http', 2, 'protocol', 'expected one of mqtt, mqtts, ws, wss, websockets'],
    [
      'listener 1883\nprotocol mqtt\ncertfile a.pem\nkeyfile a.key',
      3,
      'certfile',
      'only for mqtts or wss listeners; this one is mqtt',
    ],
    ['listener 8883\nprotocol mqtts\nkeyfile a.key', 3, 'certfile', 'needs certfile and keyfile'],
    ['listener 8883\nprotocol mqtts', 2, 'certfile', 'needs certfile and keyfile'],
    ['listener 8883\ncertfile a.pem', 2, 'keyfile', 'needs keyfile'],
    [
      'listener 8883\nprotocol mqtts\ncertfile a\nkeyfile b\nrequire_certificate true',
      5,
      'require_certificate',
      'needs a cafile',
    ],
    [
      'listener 8883\nprotocol mqtts\ncertfile a\nkeyfile b\nuse_identity_as_username true',
      5,
      'use_identity_as_username',
      'needs require_certificate true',
    ],
    ['listener 1883\npath /mqtt', 2, 'path', 'only for ws or wss listeners; this one is mqtt'],
    ['listener 8080\nprotocol ws\npath mqtt', 3, 'path', 'starting with /'],
    ['listener 1883\nrequire_certificate maybe', 2, 'require_certificate', 'expected true or false'],
    // The first listener is checked when the second begins.
    ['listener 1883\ncafile ca.pem\nlistener 1884', 2, 'cafile', 'only for mqtts or wss listeners'],
  ];
  for (const [text, line, key, fragment] of rows) {
    test(`${JSON.stringify(text)} → broker.conf:${line}: ${key}`, () => {
      assert.throws(
        () => parseBrokerConfig(text, 'broker.conf'),
        (error) => expectConfigError(error, 'broker.conf', line, key, fragment),
      );
    });
  }

  test('one port on two specific addresses is two listeners', () => {
    const draft = parseBrokerConfig('listener 1883 127.0.0.1\nlistener 1883 ::1', 'broker.conf');
    assert.deepEqual(
      draft.listeners.map((l) => l.host),
      ['127.0.0.1', '::1'],
    );
    // 0.0.0.0 takes the IPv4 addresses only: ::1 beside it binds.
    const v4 = parseBrokerConfig('listener 1883 0.0.0.0\nlistener 1883 ::1', 'broker.conf');
    assert.equal(v4.listeners.length, 2);
  });

  // Files the config names are opened at load time; errors still point at the line that names them.
  const fileRows: [() => string, number, string, string][] = [
    [() => 'password_file missing.passwd', 1, 'password_file', 'missing.passwd'],
    [() => 'allow_anonymous false\nacl_file nowhere.acl', 2, 'acl_file', 'nowhere.acl'],
    [
      () => 'listener 8883\nprotocol mqtts\ncertfile missing-cert.pem\nkeyfile missing.key',
      3,
      'certfile',
      'missing-cert.pem',
    ],
    [() => 'listener 8883\ncertfile not-a-cert.pem\nkeyfile not-a-cert.pem', 2, 'certfile', 'is not a PEM certificate'],
  ];
  for (const [text, line, key, fragment] of fileRows) {
    test(`${JSON.stringify(text())} → line ${line} ${key} when loaded`, async () => {
      const file = write('broker.conf', text());
      await assert.rejects(loadBrokerConfig(file), (error) => expectConfigError(error, file, line, key, fragment));
    });
  }

  test('an error inside the password file names that file and its line', async () => {
    const file = write('broker.conf', 'password_file bad.passwd\n');
    await assert.rejects(loadBrokerConfig(file), (error) =>
      expectConfigError(error, join(dir, 'bad.passwd'), 3, 'password_file', 'user "vin2"'),
    );
  });

  test('an error inside the ACL file names that file and its line', async () => {
    const file = write('broker.conf', 'acl_file bad.acl\n');
    await assert.rejects(loadBrokerConfig(file), (error) =>
      expectConfigError(error, join(dir, 'bad.acl'), 3, 'acl_file', 'unknown keyword "frobnicate"'),
    );
  });

  test('a key file that does not belong to the certificate is refused at its line', async (t) => {
    if (!haveCerts) return t.skip('openssl not installed');
    const file = write('broker.conf', 'listener 8883\ncertfile server.pem\nkeyfile other.key\n');
    await assert.rejects(loadBrokerConfig(file), (error) =>
      expectConfigError(error, file, 3, 'keyfile', 'not the private key'),
    );
  });

  test('a missing config file names the file', async () => {
    await assert.rejects(resolveBrokerConfig({ configFile: join(dir, 'nope.conf'), env: {} }), (error) => {
      assert.ok(error instanceof BrokerConfigError);
      assert.equal(error.key, '--config');
      assert.ok(error.message.includes('nope.conf'), error.message);
      return true;
    });
  });
});

describe('a good config', () => {
  test('every global key lands in BrokerOptions', async () => {
    const file = write(
      'broker.conf',
      [
        '# OTA fleet broker',
        'allow_anonymous true',
        'acl_file users.acl',
        'max_connections 5000',
        'max_packet_size 65536',
        'receive_maximum 20',
        'max_queued_messages 50',
        'max_queued_bytes 1048576',
        'queue_drop_policy newest',
        'max_client_id_length 64',
        'max_publish_rate 10',
        'connect_timeout 5',
        'max_keepalive 300',
        'topic_alias_maximum 10',
        'max_session_expiry 86400',
        'max_subscriptions 500',
        'use_username_as_clientid true',
        'sys_interval 0',
        'metrics_listener 9100 127.0.0.1',
        'log_level warn',
        'data_dir ./state',
        '',
        'listener 1883 127.0.0.1',
        'listener 8080',
        '  protocol ws',
        '  path /mqtt',
      ].join('\n'),
    );
    const options = await loadBrokerConfig(file);
    assert.deepEqual(options.limits, {
      maxConnections: 5000,
      maxPacketSize: 65536,
      receiveMaximum: 20,
      maxQueuedMessages: 50,
      maxQueuedBytes: 1048576,
      queueDropPolicy: 'newest',
      maxClientIdLength: 64,
      maxPublishRate: 10,
      connectTimeoutMs: 5000,
      maxKeepAlive: 300,
      topicAliasMaximum: 10,
      maxSessionExpiryInterval: 86400,
      maxSubscriptionsPerClient: 500,
    });
    assert.deepEqual(options.listeners, [
      { protocol: 'mqtt', port: 1883, host: '127.0.0.1' },
      { protocol: 'ws', port: 8080, path: '/mqtt' },
    ]);
    assert.equal(options.allowAnonymous, true);
    assert.equal(options.clientIdFromUsername, true);
    assert.equal(options.authenticate, undefined);
    assert.equal(options.sysIntervalSeconds, 0);
    assert.deepEqual(options.metrics, { port: 9100, host: '127.0.0.1' });
    assert.equal(options.logLevel, 'warn');
    assert.equal(options.dataDir, join(dir, 'state'));
    const authorize = options.authorize;
    assert.ok(authorize);
    const vin: ClientIdentity = { clientId: 'c', username: 'VIN1', protocolVersion: 4, remoteAddress: undefined };
    assert.equal(authorize(vin, 'publish', 'ota/VIN1/status'), true);
    assert.equal(authorize(vin, 'publish', 'ota/VIN2/status'), false);
  });

  test('no listener lines: one mqtt listener on 1883', async () => {
    const options = await loadBrokerConfig(write('broker.conf', 'allow_anonymous true\n'));
    assert.deepEqual(options.listeners, [{ protocol: 'mqtt', port: 1883 }]);
    assert.equal(options.allowAnonymous, true);
  });

  test('password_file gives an authenticator that checks the file', async () => {
    const hash = await hashPassword('s3cret', { N: 1024, r: 8, p: 1 });
    write('users.passwd', `vin1:${hash}\n`);
    const options = await loadBrokerConfig(write('broker.conf', 'password_file users.passwd\n'));
    const authenticate = options.authenticate;
    assert.ok(authenticate);
    const base = {
      clientId: 'c',
      certificateIdentity: undefined,
      protocolVersion: 5 as const,
      remoteAddress: undefined,
    };
    assert.deepEqual(await authenticate({ ...base, username: 'vin1', password: Buffer.from('s3cret') }), {
      ok: true,
      username: 'vin1',
    });
    assert.deepEqual(await authenticate({ ...base, username: 'vin1', password: Buffer.from('nope') }), {
      ok: false,
      reasonCode: 0x86,
    });
  });

  test('TLS listeners read their certificate files; mosquitto-style inference of mqtts and wss', async (t) => {
    if (!haveCerts) return t.skip('openssl not installed');
    const file = write(
      'broker.conf',
      [
        'listener 8883',
        'certfile server.pem',
        'keyfile server.key',
        'cafile ca.pem',
        'require_certificate true',
        'use_identity_as_username true',
        'listener 8443',
        'protocol websockets',
        'certfile server.pem',
        'keyfile server.key',
      ].join('\n'),
    );
    const options = await loadBrokerConfig(file);
    const [mqtts, wss] = options.listeners ?? [];
    assert.equal(mqtts?.protocol, 'mqtts');
    assert.equal(mqtts?.tls?.requireClientCertificate, true);
    assert.equal(mqtts?.tls?.identityFromCertificate, true);
    assert.ok(String(mqtts?.tls?.cert).includes('BEGIN CERTIFICATE'));
    assert.ok(String(mqtts?.tls?.ca).includes('BEGIN CERTIFICATE'));
    assert.equal(wss?.protocol, 'wss');
    assert.equal(wss?.tls?.ca, undefined);
  });

  test('comments, blank lines, CRLF and indentation', () => {
    const draft = parseBrokerConfig('# c\r\n\r\n   max_connections   10  \r\n\t# indented comment\r\n', 'x.conf');
    assert.deepEqual(draft.limits, { maxConnections: 10 });
  });
});

describe('environment and flags override the file', () => {
  test('precedence: file < OTALINK_BROKER_* < flags', async () => {
    const file = write('broker.conf', 'max_connections 10\nlog_level warn\nlistener 1883 127.0.0.1\n');
    const { options, warnings } = await resolveBrokerConfig({
      configFile: file,
      env: {
        OTALINK_BROKER_MAX_CONNECTIONS: '20',
        OTALINK_BROKER_LOG_LEVEL: 'error',
        OTALINK_BROKER_ALLOW_ANONYMOUS: 'true',
        OTALINK_BROKER_PORT: '1999',
        OTALINK_BROKER_URL: 'mqtt://elsewhere',
        PATH: '/usr/bin',
      },
      flags: { logLevel: 'debug', port: '0', wsPort: '0', metricsPort: '0' },
    });
    assert.equal(options.limits?.maxConnections, 20);
    assert.equal(options.logLevel, 'debug');
    assert.equal(options.allowAnonymous, true);
    assert.deepEqual(options.listeners, [
      { protocol: 'mqtt', port: 0, host: '127.0.0.1' },
      { protocol: 'ws', port: 0 },
    ]);
    assert.deepEqual(options.metrics, { port: 0 });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] as string, /OTALINK_BROKER_URL: not a broker setting, ignored/);
  });

  test('--metrics-port serves on the --host given (a loopback broker keeps its metrics on loopback)', async () => {
    const flagged = await resolveBrokerConfig({ env: {}, flags: { host: '127.0.0.1', port: '0', metricsPort: '0' } });
    assert.deepEqual(flagged.options.metrics, { port: 0, host: '127.0.0.1' });
    const file = write('metrics.conf', 'metrics_listener 9100 10.0.0.5\n');
    const filed = await resolveBrokerConfig({
      configFile: file,
      env: {},
      flags: { host: '127.0.0.1', port: '0', metricsPort: '0' },
    });
    assert.deepEqual(filed.options.metrics, { port: 0, host: '10.0.0.5' }, 'the file’s host stays');
  });

  test('OTALINK_BROKER_CONFIG names the file when no flag does', async () => {
    const file = write('broker.conf', 'max_connections 7\nallow_anonymous true\n');
    const { options, configFile, warnings } = await resolveBrokerConfig({ env: { OTALINK_BROKER_CONFIG: file } });
    assert.equal(configFile, file);
    assert.equal(options.limits?.maxConnections, 7);
    assert.deepEqual(warnings, []);
  });

  test('no config file: --host and --port make the listener; a warning when nobody could connect', async () => {
    const { options, warnings } = await resolveBrokerConfig({ env: {}, flags: { host: '127.0.0.1' } });
    assert.deepEqual(options.listeners, [{ protocol: 'mqtt', port: 1883, host: '127.0.0.1' }]);
    assert.match(warnings.join('\n'), /every client will be refused/);
  });

  test('bad values in the environment and flags name the variable or flag', async () => {
    await assert.rejects(resolveBrokerConfig({ env: { OTALINK_BROKER_MAX_CONNECTIONS: 'lots' } }), (error) =>
      expectConfigError(
        error,
        undefined,
        undefined,
        'OTALINK_BROKER_MAX_CONNECTIONS',
        'environment OTALINK_BROKER_MAX_CONNECTIONS: expected a positive integer, got "lots"',
      ),
    );
    await assert.rejects(resolveBrokerConfig({ env: {}, flags: { port: 'x' } }), (error) =>
      expectConfigError(error, undefined, undefined, '--port', '--port: expected a port number'),
    );
    await assert.rejects(resolveBrokerConfig({ env: {}, flags: { logLevel: 'loud' } }), (error) =>
      expectConfigError(error, undefined, undefined, '--log-level', 'expected one of'),
    );
    const file = write('broker.conf', 'listener 1883\n');
    await assert.rejects(resolveBrokerConfig({ configFile: file, env: {}, flags: { host: '::1' } }), (error) =>
      expectConfigError(error, undefined, undefined, '--host', 'defines its own listeners'),
    );
  });
});

describe('docs/broker-config.md', () => {
  const docs = readFileSync(new URL('../../../docs/broker-config.md', import.meta.url), 'utf8');
  const blocks = [...docs.matchAll(/```[a-z]*\n([\s\S]*?)```/g)].map((m) => m[1] as string);

  test('the complete example parses', () => {
    const example = blocks.find((b) => b.startsWith('# /etc/otalink/broker.conf'));
    assert.ok(example, 'the complete example is in the docs');
    const draft = parseBrokerConfig(example, 'broker.conf');
    assert.equal(draft.listeners.length, 3);
    assert.equal(draft.limits.maxConnections, 200000);
  });

  test('the fleet ACL example does what the docs say', () => {
    const example = blocks.find((b) => b.startsWith('# /etc/otalink/fleet.acl'));
    assert.ok(example, 'the ACL example is in the docs');
    const authorize = createAclAuthorizer(parseAcl(example, 'fleet.acl'));
    const vin: ClientIdentity = { clientId: 'tcu', username: 'VIN1', protocolVersion: 5, remoteAddress: undefined };
    assert.equal(authorize(vin, 'subscribe', 'ota/VIN1/command'), true);
    assert.equal(authorize(vin, 'subscribe', 'ota/VIN1/#'), true);
    assert.equal(authorize(vin, 'subscribe', 'ota/+/command'), false);
    assert.equal(authorize(vin, 'subscribe', '#'), false);
    const backend = { ...vin, username: 'backend' };
    assert.equal(authorize(backend, 'subscribe', 'ota/+/status'), true);
    assert.equal(authorize(backend, 'subscribe', '$SYS/broker/uptime'), true);
  });

  test('every key the parser knows is documented', () => {
    for (const key of [...Object.keys(GLOBAL_KEYS), ...Object.keys(LISTENER_KEYS)]) {
      assert.ok(docs.includes(`| \`${key}\` |`), `${key} has a row in the docs`);
    }
  });
});
