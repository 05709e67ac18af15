// The Node socket transports, for code that wraps them (the agent's simulated link): `@otalink/mqtt/transports`.
// Not part of the client's entry, which must load in a browser.
export { tcpTransport } from './tcp.js';
export { tlsTransport } from './tls.js';
