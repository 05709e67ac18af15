// MQTT 5.0 server redirection: a CONNACK or DISCONNECT with 0x9C (Use another server) or 0x9D (Server moved) may
// name the server to use in its Server Reference property. The specification leaves the format open; the common
// one, and the one read here, is "host[:port]" ("[v6]:port" for IPv6), optionally a space-separated list (the
// first entry is taken) or a URL (only its host and port: the scheme stays ours).
import { MqttError, type MqttErrorCode } from '../codec/errors.js';
import type { ResolvedTarget } from './options.js';

export const USE_ANOTHER_SERVER = 0x9c;
export const SERVER_MOVED = 0x9d;

export function isRedirect(reasonCode: number | undefined): boolean {
  return reasonCode === USE_ANOTHER_SERVER || reasonCode === SERVER_MOVED;
}

/** A refusal or disconnect that names another server; `serverReference` is undefined when the server gave none. */
export class MqttRedirectError extends MqttError {
  constructor(
    code: MqttErrorCode,
    message: string,
    reasonCode: number,
    readonly serverReference: string | undefined,
  ) {
    super(code, message, { reasonCode });
  }
}

/** The target a Server Reference points to, with our scheme and path; undefined when it cannot be read. */
export function redirectTarget(reference: string | undefined, current: ResolvedTarget): ResolvedTarget | undefined {
  const first = reference?.trim().split(/\s+/)[0];
  if (first === undefined || first === '') return undefined;
  let host: string;
  let port: string | undefined;
  if (first.includes('://')) {
    let url: URL;
    try {
      url = new URL(first);
    } catch {
      return undefined;
    }
    host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    port = url.port === '' ? undefined : url.port;
  } else {
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(first);
    const plain = /^([^:[\]]+)(?::(\d+))?$/.exec(first);
    const match = bracketed ?? plain;
    if (match === null) return undefined;
    host = match[1] as string;
    port = match[2];
  }
  // Without a port the server keeps ours: a cluster's nodes usually listen where it does.
  const number = port === undefined ? current.port : Number(port);
  if (host === '' || !Number.isInteger(number) || number < 1 || number > 65535) return undefined;
  return { ...current, host, port: number };
}
