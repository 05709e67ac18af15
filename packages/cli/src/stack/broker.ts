// The OTA stack's broker: our createBroker with two listeners. Vehicles connect over mutual TLS, their identity
// (%u in the ACL) taken from the certificate CN, so a vehicle cannot claim another VIN. The backend connects over a
// loopback-only plain listener with its user name and a per-run random password; it could equally use its client
// certificate (CN otalink-backend) on the TLS listener.
import { timingSafeEqual } from 'node:crypto';
import { type Broker, type BrokerOptions, createAclAuthorizer, createBroker, parseAcl } from '@otalink/broker';
import { BACKEND_IDENTITY, type DevPki } from '@otalink/pki';
import type { Logger } from 'pino';
import { otaAcl } from './acl.js';

export interface StackBrokerOptions {
  pki: Pick<DevPki, 'ca' | 'server'>;
  /** Topic prefix; default `ota`. */
  prefix?: string;
  /** The mutual TLS listener for vehicles (and the backend's certificate). */
  tls: { host: string; port: number };
  /** The plain listener for the backend; keep it on loopback. Omitted: no plain listener. */
  backend?: { host: string; port: number; password: string };
  logger: Logger;
  /** $SYS interval; default 10 s. */
  sysIntervalSeconds?: number;
  /** The broker's durable store (sessions, queued commands, retained presence); omitted: in memory. */
  dataDir?: string;
}

export interface StackBroker {
  broker: Broker;
  /** mqtts://host:port of the vehicle listener. */
  tlsUrl: string;
  /** mqtt://host:port of the backend listener, if any. */
  backendUrl: string | undefined;
}

const encoder = new TextEncoder();

/**
 * The backend reads every vehicle's status through one (shared) subscription, so its session's queue takes the
 * fleet's bursts: at the broker's default of 1000, 10 000 vehicles reporting at once overflowed it and the broker
 * dropped status messages it had already acknowledged to the vehicles (found by bench:ota with real agents).
 * Vehicle sessions queue a few commands at most, so the larger bound costs them nothing.
 */
export const OTA_BROKER_LIMITS = { maxQueuedMessages: 1_000_000 } as const;

function equalSecrets(given: Uint8Array, expected: Uint8Array): boolean {
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export function stackBrokerOptions(options: StackBrokerOptions): BrokerOptions {
  const listeners: NonNullable<BrokerOptions['listeners']> = [
    {
      protocol: 'mqtts',
      host: options.tls.host,
      port: options.tls.port,
      tls: {
        cert: options.pki.server.certPem,
        key: options.pki.server.keyPem,
        ca: options.pki.ca.certPem,
        requireClientCertificate: true,
        identityFromCertificate: true,
      },
    },
  ];
  const backend = options.backend;
  if (backend !== undefined) listeners.push({ protocol: 'mqtt', host: backend.host, port: backend.port });
  const backendPassword = backend === undefined ? undefined : encoder.encode(backend.password);
  return {
    listeners,
    allowAnonymous: false,
    // Reached only on the plain listener: on the TLS listener the certificate is the credential.
    authenticate: (request) =>
      backendPassword !== undefined &&
      request.username === BACKEND_IDENTITY &&
      request.password !== undefined &&
      equalSecrets(request.password, backendPassword)
        ? { ok: true }
        : { ok: false, reasonCode: 0x86 },
    authorize: createAclAuthorizer(parseAcl(otaAcl(options.prefix), 'otalink OTA ACL')),
    logger: options.logger,
    limits: OTA_BROKER_LIMITS,
    sysIntervalSeconds: options.sysIntervalSeconds ?? 10,
    ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
  };
}

function url(protocol: string, host: string, port: number): string {
  return `${protocol}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

export async function startStackBroker(options: StackBrokerOptions): Promise<StackBroker> {
  const broker = createBroker(stackBrokerOptions(options));
  try {
    await broker.listen();
  } catch (error) {
    // A taken port: release what the broker set up so a retry on another port leaves nothing behind.
    await broker.close().catch(() => undefined);
    throw error;
  }
  const addresses = broker.addresses();
  const tls = addresses.find((a) => a.protocol === 'mqtts');
  const plain = addresses.find((a) => a.protocol === 'mqtt');
  if (tls === undefined) throw new Error('broker started without its TLS listener');
  return {
    broker,
    tlsUrl: url('mqtts', options.tls.host, tls.port),
    backendUrl:
      plain === undefined || options.backend === undefined ? undefined : url('mqtt', options.backend.host, plain.port),
  };
}
