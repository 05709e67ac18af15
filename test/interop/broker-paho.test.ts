// Interop: Python paho-mqtt (Debian's /usr/bin/python3) against our broker, MQTT 3.1.1 and 5.0: every QoS,
// retained, will, persistent session, shared subscription, TLS, mutual TLS and WebSocket (paho's own WebSocket
// client, the only one of our peers with one besides MQTT.js: Debian's Mosquitto cannot open a websockets listener
// here). The Python side is an inline script that prints one JSON line with what it observed.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import type { Broker } from '../../packages/broker/src/index.js';
import { makeCertificates, type TestCertificates } from '../../packages/broker/test/support/certs.js';
import { interopBroker } from '../support/interop-broker.js';
import { DEBIAN_PYTHON } from '../support/system.js';

const SCRIPT = `
import json, sys, time, ssl, threading
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

port, version, tls_port, ca, ws_port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
mtls_port, client_cert, client_key = int(sys.argv[6]), sys.argv[7], sys.argv[8]
proto = mqtt.MQTTv5 if version == '5' else mqtt.MQTTv311
results = {}

def make(client_id, clean=True, will=None, use_tls=False, expiry=None, ws=False, mutual=False):
    transport = 'websockets' if ws else 'tcp'
    if proto == mqtt.MQTTv5:
        c = mqtt.Client(client_id=client_id, protocol=proto, transport=transport)
    else:
        c = mqtt.Client(client_id=client_id, clean_session=clean, protocol=proto, transport=transport)
    if ws:
        c.ws_set_options(path='/mqtt')
    got = []
    c.on_message = lambda cl, u, m: got.append((m.topic, m.payload.decode(), m.qos, bool(m.retain)))
    if will:
        c.will_set(will, b'paho gone', qos=1)
    if mutual:
        c.tls_set(ca_certs=ca, certfile=client_cert, keyfile=client_key)
    elif use_tls:
        c.tls_set(ca_certs=ca)
    kwargs = {}
    if proto == mqtt.MQTTv5:
        kwargs['clean_start'] = clean
        if expiry is not None:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = expiry
            kwargs['properties'] = props
    target = mtls_port if mutual else tls_port if use_tls else ws_port if ws else port
    c.connect('localhost' if use_tls or mutual else '127.0.0.1', target, 30, **kwargs)
    c.loop_start()
    return c, got

def wait(got, n, timeout=5):
    end = time.time() + timeout
    while len(got) < n and time.time() < end:
        time.sleep(0.02)

def settle():
    time.sleep(0.3)

def subscribe(c, topic, qos):
    # Back once the SUBACK is in: a message published after that is matched, however loaded the machine (a fixed
    # pause before publishing may end before the subscription is made).
    acked = threading.Event()
    c.on_subscribe = lambda *a: acked.set()
    c.subscribe(topic, qos)
    if not acked.wait(20):
        raise SystemExit('no SUBACK for %s' % topic)

# every QoS
sub, got = make('paho-sub-' + version)
for q in (0, 1, 2):
    subscribe(sub, 'paho/%s/q%d' % (version, q), q)
pub, _ = make('paho-pub-' + version)
for q in (0, 1, 2):
    pub.publish('paho/%s/q%d' % (version, q), 'qos%d' % q, qos=q).wait_for_publish()
wait(got, 3)
results['qos'] = sorted([[t, p, q] for (t, p, q, r) in got])

# retained
pub.publish('paho/%s/retained' % version, 'kept', qos=1, retain=True).wait_for_publish()
late, late_got = make('paho-late-' + version)
late.subscribe('paho/%s/retained' % version, 1)
wait(late_got, 1)
results['retained'] = [[t, p, r] for (t, p, q, r) in late_got]

# will
watch, watch_got = make('paho-watch-' + version)
subscribe(watch, 'paho/%s/will' % version, 1)
dying, _ = make('paho-dying-' + version, will='paho/%s/will' % version)
settle()
dying.loop_stop()
dying.socket().close()
wait(watch_got, 1)
results['will'] = [p for (t, p, q, r) in watch_got]

# persistent session
p1, _ = make('paho-persist-' + version, clean=False, expiry=300)
subscribe(p1, 'paho/%s/persist' % version, 1)
p1.disconnect(); p1.loop_stop()
settle()
pub.publish('paho/%s/persist' % version, 'offline', qos=1).wait_for_publish()
p2, p2_got = make('paho-persist-' + version, clean=False, expiry=300)
wait(p2_got, 1)
results['persist'] = [p for (t, p, q, r) in p2_got]

# shared subscription
a, a_got = make('paho-sa-' + version)
b, b_got = make('paho-sb-' + version)
for c in (a, b):
    subscribe(c, '$share/paho/paho/%s/shared' % version, 1)
for i in range(6):
    pub.publish('paho/%s/shared' % version, 'm%d' % i, qos=1).wait_for_publish()
end = time.time() + 5
while len(a_got) + len(b_got) < 6 and time.time() < end:
    time.sleep(0.02)
results['shared'] = [len(a_got), len(b_got)]

# TLS
if tls_port:
    t, t_got = make('paho-tls-' + version, use_tls=True)
    subscribe(t, 'paho/%s/tls' % version, 1)
    pub.publish('paho/%s/tls' % version, 'secure', qos=1).wait_for_publish()
    wait(t_got, 1)
    results['tls'] = [p for (tp, p, q, r) in t_got]
    m, _ = make('paho-mtls-' + version, mutual=True)
    settle()
    m.publish('paho/%s/tls' % version, 'mutual', qos=1).wait_for_publish()
    wait(t_got, 2)
    results['tls'] = [p for (tp, p, q, r) in t_got]
    # Without a client certificate the mutual TLS listener refuses: the handshake fails, or (TLS 1.3, where the
    # client finishes first) the line closes before any CONNACK.
    n = mqtt.Client(client_id='paho-no-cert-' + version, protocol=proto)
    n.tls_set(ca_certs=ca)
    accepted = []
    n.on_connect = lambda *a: accepted.append(a[3] if proto != mqtt.MQTTv5 else a[3].value)
    try:
        n.connect('localhost', mtls_port, 30)
        n.loop_start()
        time.sleep(1.5)
        n.loop_stop()
    except Exception:
        pass
    results['no_cert_accepted'] = [rc for rc in accepted if rc == 0]

# WebSocket: QoS 1 and 2 in from a TCP client, and out to one
w, w_got = make('paho-ws-' + version, ws=True)
subscribe(w, 'paho/%s/ws/in' % version, 2)
subscribe(watch, 'paho/%s/ws/out' % version, 2)
pub.publish('paho/%s/ws/in' % version, 'to-ws-1', qos=1).wait_for_publish()
pub.publish('paho/%s/ws/in' % version, 'to-ws-2', qos=2).wait_for_publish()
w.publish('paho/%s/ws/out' % version, 'from-ws', qos=2).wait_for_publish()
wait(w_got, 2)
end = time.time() + 5
while not any(t == 'paho/%s/ws/out' % version for (t, p, q, r) in watch_got) and time.time() < end:
    time.sleep(0.02)
results['ws'] = sorted([p, q] for (t, p, q, r) in w_got)
results['ws_out'] = [[p, q] for (t, p, q, r) in watch_got if t == 'paho/%s/ws/out' % version]

print(json.dumps(results))
sys.stdout.flush()
`;

function pahoAvailable(): boolean {
  try {
    execFileSync(DEBIAN_PYTHON, ['-c', 'import paho.mqtt.client'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('interop: Python paho-mqtt against the otalink broker', () => {
  let broker: Broker;
  let certs: TestCertificates | undefined;
  const available = pahoAvailable();
  before(async () => {
    certs = makeCertificates();
    broker = await interopBroker(certs, { ws: true });
  });
  after(async () => {
    await broker.close();
    certs?.remove();
  });

  for (const version of ['311', '5'] as const) {
    test(`paho ${version === '5' ? 'MQTTv5' : 'MQTTv311'}: QoS 0/1/2, retained, will, persistent session, shared, TLS, mutual TLS, WebSocket`, async (t) => {
      if (!available)
        return t.skip(`${DEBIAN_PYTHON} with paho-mqtt not installed (apt-get install python3-paho-mqtt)`);
      const [plain, ws, secure, mutual] = broker.addresses();
      const me = certs?.client(`paho-${version}`);
      const stdout = await new Promise<string>((resolve, reject) => {
        execFile(
          DEBIAN_PYTHON,
          [
            '-c',
            SCRIPT,
            String(plain!.port),
            version,
            String(secure?.port ?? 0),
            certs?.caPath ?? '',
            String(ws!.port),
            String(mutual?.port ?? 0),
            me?.certPath ?? '',
            me?.keyPath ?? '',
          ],
          { timeout: 60_000 },
          (error, out, err) => (error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out)),
        );
      });
      const results = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
      assert.deepEqual(results.qos, [
        [`paho/${version}/q0`, 'qos0', 0],
        [`paho/${version}/q1`, 'qos1', 1],
        [`paho/${version}/q2`, 'qos2', 2],
      ]);
      assert.deepEqual(results.retained, [[`paho/${version}/retained`, 'kept', true]]);
      assert.deepEqual(results.will, ['paho gone']);
      assert.deepEqual(results.persist, ['offline']);
      const [a, b] = results.shared as [number, number];
      assert.equal(a + b, 6);
      assert.ok(a > 0 && b > 0);
      if (certs !== undefined) {
        assert.deepEqual(results.tls, ['secure', 'mutual'], 'over TLS, then from a client over mutual TLS');
        assert.deepEqual(results.no_cert_accepted, [], 'no CONNACK 0 without a client certificate');
      }
      assert.deepEqual(results.ws, [
        ['to-ws-1', 1],
        ['to-ws-2', 2],
      ]);
      assert.deepEqual(results.ws_out, [['from-ws', 2]]);
    });
  }
});
