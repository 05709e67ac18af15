import type { Connection } from '../connection.js';

export function handlePingreq(connection: Connection): void {
  connection.send({ type: 'pingresp' });
}
