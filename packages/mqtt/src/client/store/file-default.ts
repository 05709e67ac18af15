// Where a Node client keeps its messages when the application named no store: a file store per client id and
// server, as Paho C's default persistence does (a directory per "clientId-serverURI" in the working directory).
// A client id names the session on that server, so a restarted process with the same id and server finds what
// the killed one had in flight or queued, and resends it; another id or another server is another session.
//
// The directory: the `storeDir` option, else $OTALINK_MQTT_STORE_DIR, else `.otalink-mqtt` in the working
// directory. A browser build maps this module to browser.ts: a page has no file system, so no default store.
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';

/**
 * Longest name part kept readable. Longer ones are cut and end in a hash; the lock's temporary file adds ~35
 * characters, and ecryptfs (an encrypted home) allows 143.
 */
const MAX_NAME = 96;

/** The default file store's path for this client id and server, or undefined where there is none (a browser). */
export function defaultStorePath(
  clientId: string,
  server: { host: string; port: number; protocol?: string; path?: string },
  dir: string | undefined,
): string | undefined {
  const base = dir || process.env.OTALINK_MQTT_STORE_DIR || '.otalink-mqtt';
  const host = server.host.toLowerCase();
  // Two WebSocket endpoints on one host and port (a gateway per tenant) are two servers.
  const wsPath = server.protocol?.startsWith('ws') === true && server.path !== '/mqtt' ? (server.path ?? '') : '';
  let name = `${safeName(clientId)}@${safeName(host)}_${server.port}${wsPath === '' ? '' : `_${safeName(wsPath)}`}`;
  // A file system that ignores case (macOS, Windows) would give "Truck-A" and "truck-a", two ids, one file.
  const cased = /[A-Z]/.test(clientId);
  if (name.length > MAX_NAME || cased) {
    const hash = createHash('sha256').update(`${clientId}\0${host}\0${server.port}\0${wsPath}`).digest('hex');
    name = `${name.slice(0, MAX_NAME - 9)}~${hash.slice(0, 8)}`;
  }
  return join(resolve(base), `${name}.log`);
}

/**
 * Letters, digits, '.', '_' and '-' as they are; every other byte of the UTF-8 text percent-encoded (so no '/',
 * no '\0'; an unpaired surrogate, which no MQTT string may hold, is encoded as U+FFFD rather than thrown).
 */
function safeName(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9._-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
