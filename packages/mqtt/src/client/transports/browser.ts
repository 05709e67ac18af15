// What a browser build gets for mqtt:// and mqtts://: package.json's "browser" field maps tcp.ts and tls.ts here.
// A page has no TCP sockets; and without the map a bundler that hoists imports (esbuild's ESM output) would put
// node:net and node:tls at the top of the bundle, which a browser then refuses to load at all.
import { MqttError } from '../../codec/errors.js';
import type { TransportFactory } from '../transport.js';

function unavailable(scheme: string): TransportFactory {
  return async () => {
    throw new MqttError(
      'MQTT_ERR_INVALID_OPTION',
      `${scheme}:// needs a TCP socket, which a browser does not have: use ws:// or wss://`,
    );
  };
}

export const tcpTransport = unavailable('mqtt');
export const tlsTransport = unavailable('mqtts');
