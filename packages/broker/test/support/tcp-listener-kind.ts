// Run in a child process by unit-raw-tcp.test.ts, with the Node flags under test: prints what the plain TCP
// listener hands over (RawTcpSocket or net.Socket) and whether a broker on it answers CONNECT.
import { once } from 'node:events';
import { connect, Socket } from 'node:net';
import { encode } from '@otalink/mqtt';
import { startTcpListener } from '../../src/listeners/tcp.js';
import { startBroker } from './raw-client.js';

const kinds: string[] = [];
const listener = await startTcpListener({ protocol: 'mqtt', host: '127.0.0.1', port: 0 }, (stream) => {
  kinds.push(stream instanceof Socket ? 'net.Socket' : (stream.constructor?.name ?? 'unknown'));
  stream.destroy();
});
const probe = connect({ port: listener.port, host: '127.0.0.1' });
probe.on('error', () => {});
await once(probe, 'connect');
while (kinds.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
probe.destroy();
await listener.close();

const { broker, port } = await startBroker();
const client = connect({ port, host: '127.0.0.1' });
await once(client, 'connect');
client.write(encode({ type: 'connect', protocolVersion: 4, clientId: 'kind', clean: true, keepalive: 0 }, 4));
const [chunk] = (await once(client, 'data')) as [Buffer];
client.destroy();
await broker.close();
process.stdout.write(`${kinds[0]} ${chunk[0] === 0x20 && chunk[3] === 0 ? 'CONNACK' : 'no CONNACK'}\n`);
