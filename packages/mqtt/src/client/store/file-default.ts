// Where a Node client keeps its messages when the application named no store: a file store per client id and
// server, as Paho C's default persistence does (a directory per "clientId-serverURI" in the working directory).
// A client id names the session on that server, so a restarted process with the same id and server finds what
// the killed one had in flight or queued, and resends it; another id or another server is another session.
//
// The directory: the `storeDir` option, else $OTALINK_MQTT_STORE_DIR, else `.otalink-mqtt` in the working
// directory. A browser build maps this module to browser.ts: a page has no file system, so no default store.
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';

/** Longest file name kept readable; longer ids are cut and end in a hash (names are at most 255 bytes). */
const MAX_NAME = 160;

/** The default file store's path for this client id and server, or undefined where there is none (a browser). */
export function defaultStorePath(
  clientId: string,
  server: { host: string; port: number },
  dir: string | undefined,
): string | undefined {
  const base = dir ?? process.env.OTALINK_MQTT_STORE_DIR ?? '.otalink-mqtt';
  let name = `${safeName(clientId)}@${safeName(server.host.toLowerCase())}_${server.port}`;
  if (name.length > MAX_NAME) {
    const hash = createHash('sha256').update(`${clientId}\0${server.host}\0${server.port}`).digest('hex');
    name = `${name.slice(0, MAX_NAME - 17)}~${hash.slice(0, 16)}`;
  }
  return join(resolve(base), `${name}.log`);
}

/** Letters, digits, '.', '_' and '-' as they are; every other byte percent-encoded (no '/', no '\0'). */
function safeName(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
