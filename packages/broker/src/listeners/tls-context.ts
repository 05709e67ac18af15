// Renewed certificates for a running TLS listener (mqtts, wss): only the listeners that use TLS load this, and
// node:tls with it (see index.ts on what it costs a plain MQTT broker's start-up).
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import type { ListenerOptions } from '../options.js';
import { tlsContextOptions } from './common.js';

/**
 * Checks `options.tls` (throws, swapping nothing, if the certificate, key and CA do not make a context) and returns
 * what makes the server's new handshakes use them; connections already made keep theirs.
 */
export function tlsContextSwap(
  server: { setSecureContext(options: SecureContextOptions): void },
  options: ListenerOptions,
): () => void {
  const context = tlsContextOptions(options);
  createSecureContext(context);
  return () => server.setSecureContext(context);
}
