// The broker the interop tests run peers against: plain TCP, then (with certificates) TLS and mutual TLS, and a
// WebSocket listener on /mqtt when asked for; anonymous access, no $SYS, silent. Addresses come in that order.
import { pino } from 'pino';
import { type Broker, createBroker, type ListenerOptions } from '../../packages/broker/src/index.js';
import type { TestCertificates } from '../../packages/broker/test/support/certs.js';

export async function interopBroker(
  certs: TestCertificates | undefined,
  options: { ws?: boolean } = {},
): Promise<Broker> {
  const listeners: ListenerOptions[] = [{ protocol: 'mqtt', host: '127.0.0.1', port: 0 }];
  if (options.ws === true) listeners.push({ protocol: 'ws', host: '127.0.0.1', port: 0, path: '/mqtt' });
  if (certs !== undefined) {
    const tls = { cert: certs.serverCert, key: certs.serverKey };
    listeners.push(
      { protocol: 'mqtts', host: '127.0.0.1', port: 0, tls },
      { protocol: 'mqtts', host: '127.0.0.1', port: 0, tls: { ...tls, ca: certs.ca, requireClientCertificate: true } },
    );
  }
  const broker = createBroker({
    listeners,
    allowAnonymous: true,
    logger: pino({ level: 'silent' }),
    sysIntervalSeconds: 0,
  });
  await broker.listen();
  return broker;
}
