// Which CONNACK refusals a retry cannot fix. Each names something about this client that only a change on the
// server's side (or in our configuration) can make acceptable: its credentials, its rights, its client id, its
// protocol version, its authentication method, its will. Server unavailable, busy, quota and rate refusals are not
// among them: those pass by themselves, and the usual backoff suits them.

/** MQTT 5.0 CONNACK reason codes that name this client's CONNECT, not the server's state. */
const PERMANENT_5 = new Set([
  0x81, // Malformed Packet
  0x82, // Protocol Error
  0x84, // Unsupported Protocol Version
  0x85, // Client Identifier not valid
  0x86, // Bad User Name or Password
  0x87, // Not authorized
  0x8a, // Banned
  0x8c, // Bad authentication method
  0x90, // Topic Name invalid (the will's)
  0x95, // Packet too large (the CONNECT, its will)
  0x99, // Payload format invalid (the will's)
  0x9a, // Retain not supported (the will's)
  0x9b, // QoS not supported (the will's)
]);

/** MQTT 3.1.1 return codes: 1 unacceptable protocol version, 2 identifier rejected, 4 bad user name or password, 5 not authorized. */
const PERMANENT_311 = new Set([1, 2, 4, 5]);

export function isPermanentRefusal(reasonCode: number | undefined, version: 4 | 5): boolean {
  if (reasonCode === undefined) return false;
  return (version === 5 ? PERMANENT_5 : PERMANENT_311).has(reasonCode);
}
