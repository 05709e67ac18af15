// Every MQTT control packet in both versions, as bytes written by hand from the specifications (MQTT 3.1.1
// chapter 3, MQTT 5.0 chapter 3) next to the object the codec must turn them into. Lengths are counted by hand in
// the comments; nothing here calls the encoder. Object keys follow wire order, because the encoder writes
// properties in the order of the object's keys.
import type { Packet, ProtocolVersion } from '../../src/codec/index.js';
import { concatBytes, hex } from './bytes.js';

export interface Fixture {
  name: string;
  version: ProtocolVersion;
  packet: Packet;
  bytes: Uint8Array;
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const bin = (...b: number[]): Uint8Array => Uint8Array.from(b);

const v4: Fixture[] = [
  {
    name: 'CONNECT minimal',
    version: 4,
    packet: { type: 'connect', protocolVersion: 4, protocolName: 'MQTT', clientId: 'c1', clean: true, keepalive: 60 },
    bytes: hex`
      10 0e        # CONNECT, remaining length 14 = 10 variable header + 4 payload
      00 04 "MQTT" # protocol name
      04           # protocol level 4 (3.1.1)
      02           # connect flags: clean session
      00 3c        # keep alive 60 s
      00 02 "c1"   # client id
    `,
  },
  {
    name: 'CONNECT empty client id, keep alive 0',
    version: 4,
    packet: { type: 'connect', protocolVersion: 4, protocolName: 'MQTT', clientId: '', clean: true, keepalive: 0 },
    bytes: hex`10 0c | 00 04 "MQTT" 04 02 00 00 | 00 00  # 3.1.3.1: a zero-length client id with clean session`,
  },
  {
    name: 'CONNECT with will (QoS 1, retain), user name, password',
    version: 4,
    packet: {
      type: 'connect',
      protocolVersion: 4,
      protocolName: 'MQTT',
      clientId: 'dev-1',
      clean: false,
      keepalive: 300,
      will: { topic: 'v/1/lwt', payload: text('gone'), qos: 1, retain: true },
      username: 'user',
      password: bin(1, 2, 3),
    },
    bytes: hex`
      10 2b           # remaining length 43 = 10 + 7 + 9 + 6 + 6 + 5
      00 04 "MQTT" 04
      ec              # flags: user name 80 | password 40 | will retain 20 | will QoS 1 (08) | will 04, clean 0
      01 2c           # keep alive 300
      00 05 "dev-1"   # client id (7)
      00 07 "v/1/lwt" # will topic (9)
      00 04 "gone"    # will message (6)
      00 04 "user"    # user name (6)
      00 03 01 02 03  # password (5)
    `,
  },
  {
    name: 'CONNECT with user name only',
    version: 4,
    packet: {
      type: 'connect',
      protocolVersion: 4,
      protocolName: 'MQTT',
      clientId: 'c',
      clean: true,
      keepalive: 10,
      username: 'u',
    },
    bytes: hex`10 10 | 00 04 "MQTT" 04 82 00 0a | 00 01 "c" | 00 01 "u"  # flags: user name 80 | clean 02`,
  },
  ...[0, 1, 2, 3, 4, 5].map(
    (code): Fixture => ({
      name: `CONNACK return code ${code}`,
      version: 4,
      packet: { type: 'connack', sessionPresent: false, reasonCode: code },
      bytes: hex`20 02 | 00 | 0${code}  # 3.2.2.3 return code`,
    }),
  ),
  {
    name: 'CONNACK session present',
    version: 4,
    packet: { type: 'connack', sessionPresent: true, reasonCode: 0 },
    bytes: hex`20 02 | 01 00  # acknowledge flags: session present`,
  },
  {
    name: 'PUBLISH QoS 0',
    version: 4,
    packet: { type: 'publish', topic: 'a/b', payload: text('hi'), qos: 0, retain: false, dup: false },
    bytes: hex`30 07 | 00 03 "a/b" | "hi"  # 2 + 3 + 2`,
  },
  {
    name: 'PUBLISH QoS 1 retain',
    version: 4,
    packet: { type: 'publish', topic: 'a/b', payload: text('x'), qos: 1, retain: true, dup: false, packetId: 10 },
    bytes: hex`33 08 | 00 03 "a/b" | 00 0a | "x"  # flags: QoS 1 (02) | retain 01; packet id 10`,
  },
  {
    name: 'PUBLISH QoS 2 dup, empty payload, packet id 65535',
    version: 4,
    packet: {
      type: 'publish',
      topic: 'a/b',
      payload: new Uint8Array(0),
      qos: 2,
      retain: false,
      dup: true,
      packetId: 65535,
    },
    bytes: hex`3c 07 | 00 03 "a/b" | ff ff  # flags: DUP 08 | QoS 2 (04)`,
  },
  {
    name: 'PUBLISH retained with empty payload (clears the retained message)',
    version: 4,
    packet: { type: 'publish', topic: 'a/b', payload: new Uint8Array(0), qos: 0, retain: true, dup: false },
    bytes: hex`31 05 | 00 03 "a/b"`,
  },
  {
    name: 'PUBLISH UTF-8 topic (2, 3 and 4 byte sequences)',
    version: 4,
    packet: { type: 'publish', topic: 'fahrzeug/ü/温度/🚗', payload: text('1'), qos: 0, retain: false, dup: false },
    bytes: hex`
      30 1a                # 2 + 23 + 1 = 26
      00 17                # topic length 23 = 9 + 2 + 1 + 6 + 1 + 4
      "fahrzeug/" c3 bc 2f # ü = U+00FC
      e6 b8 a9 e5 ba a6 2f # 温度
      f0 9f 9a 97          # 🚗 U+1F697
      "1"
    `,
  },
  {
    name: 'PUBLISH with a two-byte remaining length (205)',
    version: 4,
    packet: {
      type: 'publish',
      topic: 'a/b',
      payload: new Uint8Array(200).fill(0x5a),
      qos: 0,
      retain: false,
      dup: false,
    },
    bytes: concatBytes(hex`30 cd 01 | 00 03 "a/b"  # 205 = 0x4d + 1 * 128`, new Uint8Array(200).fill(0x5a)),
  },
  {
    name: 'PUBLISH with a three-byte remaining length (16384)',
    version: 4,
    packet: { type: 'publish', topic: 'a', payload: new Uint8Array(16381).fill(7), qos: 0, retain: false, dup: false },
    bytes: concatBytes(
      hex`30 80 80 01 | 00 01 "a"  # 16384 = 128 * 128, the first three-byte value`,
      new Uint8Array(16381).fill(7),
    ),
  },
  { name: 'PUBACK', version: 4, packet: { type: 'puback', packetId: 1 }, bytes: hex`40 02 00 01` },
  { name: 'PUBREC', version: 4, packet: { type: 'pubrec', packetId: 0x1234 }, bytes: hex`50 02 12 34` },
  { name: 'PUBREL', version: 4, packet: { type: 'pubrel', packetId: 65535 }, bytes: hex`62 02 ff ff  # flags 0010` },
  { name: 'PUBCOMP', version: 4, packet: { type: 'pubcomp', packetId: 7 }, bytes: hex`70 02 00 07` },
  {
    name: 'SUBSCRIBE three filters',
    version: 4,
    packet: {
      type: 'subscribe',
      packetId: 1,
      subscriptions: [
        { topicFilter: 'a/b', qos: 0 },
        { topicFilter: 'c/+', qos: 1 },
        { topicFilter: '#', qos: 2 },
      ],
    },
    bytes: hex`
      82 12             # SUBSCRIBE, flags 0010; 18 = 2 + 6 + 6 + 4
      00 01             # packet id
      00 03 "a/b" 00    # requested QoS 0
      00 03 "c/+" 01
      00 01 "#" 02
    `,
  },
  {
    name: 'SUBACK granted and failure',
    version: 4,
    packet: { type: 'suback', packetId: 1, reasonCodes: [0, 1, 2, 0x80] },
    bytes: hex`90 06 | 00 01 | 00 01 02 80`,
  },
  {
    name: 'UNSUBSCRIBE two filters',
    version: 4,
    packet: { type: 'unsubscribe', packetId: 2, topicFilters: ['a/b', 'c/+'] },
    bytes: hex`a2 0c | 00 02 | 00 03 "a/b" | 00 03 "c/+"  # flags 0010; 12 = 2 + 5 + 5`,
  },
  { name: 'UNSUBACK', version: 4, packet: { type: 'unsuback', packetId: 2 }, bytes: hex`b0 02 00 02` },
  { name: 'PINGREQ', version: 4, packet: { type: 'pingreq' }, bytes: hex`c0 00` },
  { name: 'PINGRESP', version: 4, packet: { type: 'pingresp' }, bytes: hex`d0 00` },
  { name: 'DISCONNECT', version: 4, packet: { type: 'disconnect' }, bytes: hex`e0 00` },
];

const v5: Fixture[] = [
  {
    name: 'CONNECT minimal',
    version: 5,
    packet: { type: 'connect', protocolVersion: 5, protocolName: 'MQTT', clientId: 'c1', clean: true, keepalive: 60 },
    bytes: hex`
      10 0f              # 15 = 10 + 1 property length + 4
      00 04 "MQTT" 05 02 00 3c
      00                 # property length 0
      00 02 "c1"
    `,
  },
  {
    name: 'CONNECT empty client id',
    version: 5,
    packet: { type: 'connect', protocolVersion: 5, protocolName: 'MQTT', clientId: '', clean: true, keepalive: 0 },
    bytes: hex`10 0d | 00 04 "MQTT" 05 02 00 00 | 00 | 00 00`,
  },
  {
    name: 'CONNECT with every connect and will property, user name, password',
    version: 5,
    packet: {
      type: 'connect',
      protocolVersion: 5,
      protocolName: 'MQTT',
      clientId: 'veh-42',
      clean: true,
      keepalive: 30,
      properties: {
        sessionExpiryInterval: 3600,
        receiveMaximum: 20,
        maximumPacketSize: 65536,
        topicAliasMaximum: 10,
        requestResponseInformation: 1,
        requestProblemInformation: 0,
        userProperties: [['k', 'v']],
        authenticationMethod: 'TOKEN',
        authenticationData: bin(1, 2, 3),
      },
      will: {
        topic: 'v/42/status',
        payload: text('offline'),
        qos: 2,
        retain: false,
        properties: {
          willDelayInterval: 10,
          payloadFormatIndicator: 1,
          messageExpiryInterval: 300,
          contentType: 'text/plain',
          responseTopic: 'reply',
          correlationData: bin(0xca, 0xfe),
          userProperties: [['a', 'b']],
        },
      },
      username: 'u',
      password: text('pw'),
    },
    bytes: hex`
      10 87 01               # remaining length 135 = 52 variable header + 83 payload (varint 87 01)
      00 04 "MQTT" 05
      d6                     # user name 80 | password 40 | will QoS 2 (10) | will 04 | clean start 02
      00 1e                  # keep alive 30
      29                     # property length 41
      11 00 00 0e 10         #  session expiry interval 3600 (5)
      21 00 14               #  receive maximum 20 (3)
      27 00 01 00 00         #  maximum packet size 65536 (5)
      22 00 0a               #  topic alias maximum 10 (3)
      19 01                  #  request response information (2)
      17 00                  #  request problem information 0 (2)
      26 00 01 "k" 00 01 "v" #  user property (7)
      15 00 05 "TOKEN"       #  authentication method (8)
      16 00 03 01 02 03      #  authentication data (6)
      00 06 "veh-42"         # client id (8)
      2d                     # will property length 45
      18 00 00 00 0a         #  will delay interval 10 (5)
      01 01                  #  payload format indicator: UTF-8 (2)
      02 00 00 01 2c         #  message expiry interval 300 (5)
      03 00 0a "text/plain"  #  content type (13)
      08 00 05 "reply"       #  response topic (8)
      09 00 02 ca fe         #  correlation data (5)
      26 00 01 "a" 00 01 "b" #  user property (7)
      00 0b "v/42/status"    # will topic (13)
      00 07 "offline"        # will payload (9)
      00 01 "u"              # user name (3)
      00 02 "pw"             # password (4)
    `,
  },
  {
    name: 'CONNACK success, no properties',
    version: 5,
    packet: { type: 'connack', sessionPresent: false, reasonCode: 0 },
    bytes: hex`20 03 | 00 00 | 00`,
  },
  {
    name: 'CONNACK session present',
    version: 5,
    packet: { type: 'connack', sessionPresent: true, reasonCode: 0 },
    bytes: hex`20 03 | 01 00 | 00`,
  },
  {
    name: 'CONNACK not authorized',
    version: 5,
    packet: { type: 'connack', sessionPresent: false, reasonCode: 0x87 },
    bytes: hex`20 03 | 00 87 | 00`,
  },
  {
    name: 'CONNACK with every CONNACK property',
    version: 5,
    packet: {
      type: 'connack',
      sessionPresent: false,
      reasonCode: 0,
      properties: {
        sessionExpiryInterval: 120,
        receiveMaximum: 100,
        maximumQoS: 1,
        retainAvailable: 0,
        maximumPacketSize: 16384,
        assignedClientIdentifier: 'auto',
        topicAliasMaximum: 5,
        reasonString: 'ok',
        userProperties: [['x', 'y']],
        wildcardSubscriptionAvailable: 1,
        subscriptionIdentifierAvailable: 0,
        sharedSubscriptionAvailable: 1,
        serverKeepAlive: 60,
        responseInformation: 'resp',
        serverReference: 'srv',
        authenticationMethod: 'TOKEN',
        authenticationData: bin(0xff),
      },
    },
    bytes: hex`
      20 4c                  # 76 = 2 + 1 + 73
      00 00
      49                     # property length 73
      11 00 00 00 78         #  session expiry interval 120 (5)
      21 00 64               #  receive maximum 100 (3)
      24 01                  #  maximum QoS 1 (2)
      25 00                  #  retain available 0 (2)
      27 00 00 40 00         #  maximum packet size 16384 (5)
      12 00 04 "auto"        #  assigned client identifier (7)
      22 00 05               #  topic alias maximum 5 (3)
      1f 00 02 "ok"          #  reason string (5)
      26 00 01 "x" 00 01 "y" #  user property (7)
      28 01                  #  wildcard subscription available (2)
      29 00                  #  subscription identifiers available 0 (2)
      2a 01                  #  shared subscription available (2)
      13 00 3c               #  server keep alive 60 (3)
      1a 00 04 "resp"        #  response information (7)
      1c 00 03 "srv"         #  server reference (6)
      15 00 05 "TOKEN"       #  authentication method (8)
      16 00 01 ff            #  authentication data (4)
    `,
  },
  {
    name: 'PUBLISH QoS 0, no properties',
    version: 5,
    packet: { type: 'publish', topic: 'a/b', payload: text('hi'), qos: 0, retain: false, dup: false },
    bytes: hex`30 08 | 00 03 "a/b" | 00 | "hi"  # 2 + 3 + 1 + 2`,
  },
  {
    name: 'PUBLISH QoS 2 dup retain, empty payload',
    version: 5,
    packet: { type: 'publish', topic: 'a', payload: new Uint8Array(0), qos: 2, retain: true, dup: true, packetId: 2 },
    bytes: hex`3d 06 | 00 01 "a" | 00 02 | 00  # flags: DUP 08 | QoS 2 (04) | retain 01`,
  },
  {
    name: 'PUBLISH QoS 1 with every publish property',
    version: 5,
    packet: {
      type: 'publish',
      topic: 'v/1/cmd',
      payload: text('{"a":1}'),
      qos: 1,
      retain: false,
      dup: false,
      packetId: 42,
      properties: {
        payloadFormatIndicator: 1,
        messageExpiryInterval: 60,
        topicAlias: 5,
        responseTopic: 'reply',
        correlationData: bin(1, 2, 3),
        userProperties: [
          ['k', '1'],
          ['k', '2'],
          ['z', '3'],
        ],
        subscriptionIdentifiers: [1, 268435455],
        contentType: 'application/json',
      },
    },
    bytes: hex`
      32 5a                        # QoS 1; 90 = 2 + 7 + 2 + 1 + 71 + 7
      00 07 "v/1/cmd"
      00 2a                        # packet id 42
      47                           # property length 71
      01 01                        #  payload format indicator (2)
      02 00 00 00 3c               #  message expiry interval 60 (5)
      23 00 05                     #  topic alias 5 (3)
      08 00 05 "reply"             #  response topic (8)
      09 00 03 01 02 03            #  correlation data (6)
      26 00 01 "k" 00 01 "1"       #  user property k=1 (7)
      26 00 01 "k" 00 01 "2"       #  user property k=2: the name repeats, order kept (7)
      26 00 01 "z" 00 01 "3"       #  (7)
      0b 01                        #  subscription identifier 1 (2)
      0b ff ff ff 7f               #  subscription identifier 268435455, the varint maximum (5)
      03 00 10 "application/json"  #  content type (19)
      7b 22 61 22 3a 31 7d         # payload {"a":1}
    `,
  },
  {
    name: 'PUBLISH topic alias with empty topic',
    version: 5,
    packet: {
      type: 'publish',
      topic: '',
      payload: text('x'),
      qos: 0,
      retain: false,
      dup: false,
      properties: { topicAlias: 5 },
    },
    bytes: hex`30 07 | 00 00 | 03 23 00 05 | "x"  # 3.3.2.3.4: an empty topic name with a topic alias`,
  },
  {
    name: 'PUBACK short form (success, no properties)',
    version: 5,
    packet: { type: 'puback', packetId: 1, reasonCode: 0 },
    bytes: hex`40 02 00 01  # 3.4.2.1: reason code 0 and no properties may be omitted`,
  },
  {
    name: 'PUBACK reason only',
    version: 5,
    packet: { type: 'puback', packetId: 1, reasonCode: 0x10 },
    bytes: hex`40 03 00 01 10  # no matching subscribers; property length omitted`,
  },
  {
    name: 'PUBACK with properties',
    version: 5,
    packet: {
      type: 'puback',
      packetId: 1,
      reasonCode: 0x87,
      properties: { reasonString: 'denied', userProperties: [['a', 'b']] },
    },
    bytes: hex`40 14 | 00 01 | 87 | 10 | 1f 00 06 "denied" | 26 00 01 "a" 00 01 "b"  # 20 = 2 + 1 + 1 + 9 + 7`,
  },
  {
    name: 'PUBACK success with properties',
    version: 5,
    packet: { type: 'puback', packetId: 9, reasonCode: 0, properties: { reasonString: 'ok' } },
    bytes: hex`40 09 | 00 09 | 00 | 05 | 1f 00 02 "ok"`,
  },
  {
    name: 'PUBREC short form',
    version: 5,
    packet: { type: 'pubrec', packetId: 2, reasonCode: 0 },
    bytes: hex`50 02 00 02`,
  },
  {
    name: 'PUBREC reason only',
    version: 5,
    packet: { type: 'pubrec', packetId: 2, reasonCode: 0x80 },
    bytes: hex`50 03 00 02 80`,
  },
  {
    name: 'PUBREC with properties',
    version: 5,
    packet: { type: 'pubrec', packetId: 2, reasonCode: 0x97, properties: { reasonString: 'quota' } },
    bytes: hex`50 0c | 00 02 | 97 | 08 | 1f 00 05 "quota"`,
  },
  {
    name: 'PUBREL short form',
    version: 5,
    packet: { type: 'pubrel', packetId: 3, reasonCode: 0 },
    bytes: hex`62 02 00 03`,
  },
  {
    name: 'PUBREL reason only',
    version: 5,
    packet: { type: 'pubrel', packetId: 3, reasonCode: 0x92 },
    bytes: hex`62 03 00 03 92  # packet identifier not found`,
  },
  {
    name: 'PUBREL with properties',
    version: 5,
    packet: { type: 'pubrel', packetId: 3, reasonCode: 0, properties: { userProperties: [['k', 'v']] } },
    bytes: hex`62 0b | 00 03 | 00 | 07 | 26 00 01 "k" 00 01 "v"`,
  },
  {
    name: 'PUBCOMP short form',
    version: 5,
    packet: { type: 'pubcomp', packetId: 4, reasonCode: 0 },
    bytes: hex`70 02 00 04`,
  },
  {
    name: 'PUBCOMP reason only',
    version: 5,
    packet: { type: 'pubcomp', packetId: 4, reasonCode: 0x92 },
    bytes: hex`70 03 00 04 92`,
  },
  {
    name: 'PUBCOMP with properties',
    version: 5,
    packet: { type: 'pubcomp', packetId: 4, reasonCode: 0x92, properties: { reasonString: 'gone' } },
    bytes: hex`70 0b | 00 04 | 92 | 07 | 1f 00 04 "gone"`,
  },
  {
    name: 'SUBSCRIBE minimal',
    version: 5,
    packet: {
      type: 'subscribe',
      packetId: 1,
      subscriptions: [{ topicFilter: 'a/b', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 }],
    },
    bytes: hex`82 09 | 00 01 | 00 | 00 03 "a/b" 00`,
  },
  {
    name: 'SUBSCRIBE with options, subscription identifier, user property, $share filter',
    version: 5,
    packet: {
      type: 'subscribe',
      packetId: 10,
      properties: { subscriptionIdentifiers: [7], userProperties: [['k', 'v']] },
      subscriptions: [
        { topicFilter: 'a/+', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 },
        { topicFilter: 'b/#', qos: 2, noLocal: true, retainAsPublished: true, retainHandling: 2 },
        { topicFilter: '$share/g/c/d', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 1 },
      ],
    },
    bytes: hex`
      82 27                    # 39 = 2 + 1 + 9 + 6 + 6 + 15
      00 0a                    # packet id 10
      09                       # property length 9
      0b 07                    #  subscription identifier 7
      26 00 01 "k" 00 01 "v"   #  user property
      00 03 "a/+" 01           # QoS 1
      00 03 "b/#" 2e           # retain handling 2 (20) | retain as published 08 | no local 04 | QoS 2
      00 0c "$share/g/c/d" 10  # retain handling 1, QoS 0
    `,
  },
  {
    name: 'SUBACK every SUBACK reason code',
    version: 5,
    packet: { type: 'suback', packetId: 10, reasonCodes: [0, 1, 2, 0x80, 0x87, 0x8f, 0x9e, 0xa1, 0xa2] },
    bytes: hex`90 0c | 00 0a | 00 | 00 01 02 80 87 8f 9e a1 a2`,
  },
  {
    name: 'SUBACK with properties',
    version: 5,
    packet: { type: 'suback', packetId: 11, properties: { reasonString: 'why' }, reasonCodes: [0x87] },
    bytes: hex`90 0a | 00 0b | 06 1f 00 03 "why" | 87`,
  },
  {
    name: 'UNSUBSCRIBE with user property and $share filter',
    version: 5,
    packet: {
      type: 'unsubscribe',
      packetId: 12,
      properties: { userProperties: [['k', 'v']] },
      topicFilters: ['a/b', '$share/g/c/#'],
    },
    bytes: hex`a2 1d | 00 0c | 07 26 00 01 "k" 00 01 "v" | 00 03 "a/b" | 00 0c "$share/g/c/#"  # 29 = 2 + 8 + 5 + 14`,
  },
  {
    name: 'UNSUBACK with reason codes',
    version: 5,
    packet: { type: 'unsuback', packetId: 12, reasonCodes: [0, 0x11, 0x87] },
    bytes: hex`b0 06 | 00 0c | 00 | 00 11 87`,
  },
  {
    name: 'UNSUBACK with properties',
    version: 5,
    packet: { type: 'unsuback', packetId: 13, properties: { reasonString: 'no' }, reasonCodes: [0x80] },
    bytes: hex`b0 09 | 00 0d | 05 1f 00 02 "no" | 80`,
  },
  { name: 'PINGREQ', version: 5, packet: { type: 'pingreq' }, bytes: hex`c0 00` },
  { name: 'PINGRESP', version: 5, packet: { type: 'pingresp' }, bytes: hex`d0 00` },
  {
    name: 'DISCONNECT empty (normal disconnection)',
    version: 5,
    packet: { type: 'disconnect', reasonCode: 0 },
    bytes: hex`e0 00  # 3.14.2.1: remaining length 0 means reason 0x00`,
  },
  {
    name: 'DISCONNECT reason only',
    version: 5,
    packet: { type: 'disconnect', reasonCode: 4 },
    bytes: hex`e0 01 04  # disconnect with will message`,
  },
  {
    name: 'DISCONNECT with properties',
    version: 5,
    packet: {
      type: 'disconnect',
      reasonCode: 0x8b,
      properties: {
        sessionExpiryInterval: 0,
        serverReference: 'srv',
        reasonString: 'bye!',
        userProperties: [['k', 'v']],
      },
    },
    bytes: hex`
      e0 1b                  # 27 = 1 + 1 + 25
      8b                     # server shutting down
      19                     # property length 25
      11 00 00 00 00         #  session expiry interval 0 (5)
      1c 00 03 "srv"         #  server reference (6)
      1f 00 04 "bye!"        #  reason string (7)
      26 00 01 "k" 00 01 "v" #  user property (7)
    `,
  },
  {
    name: 'AUTH empty (success)',
    version: 5,
    packet: { type: 'auth', reasonCode: 0 },
    bytes: hex`f0 00  # 3.15.2.1: reason 0x00 with no properties may be omitted`,
  },
  {
    name: 'AUTH continue with method, data, reason string',
    version: 5,
    packet: {
      type: 'auth',
      reasonCode: 0x18,
      properties: {
        authenticationMethod: 'TOKEN',
        authenticationData: bin(0xde, 0xad, 0xbe, 0xef),
        reasonString: 'more',
      },
    },
    bytes: hex`f0 18 | 18 | 16 | 15 00 05 "TOKEN" | 16 00 04 de ad be ef | 1f 00 04 "more"  # 24 = 1 + 1 + 8 + 7 + 7`,
  },
  {
    name: 'AUTH re-authenticate',
    version: 5,
    packet: { type: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'TOKEN' } },
    bytes: hex`f0 0a | 19 | 08 15 00 05 "TOKEN"`,
  },
];

export const fixtures: readonly Fixture[] = [...v4, ...v5];
