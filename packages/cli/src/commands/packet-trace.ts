// `-d` for `otalink pub` and `otalink sub`: a line per MQTT packet sent and received, in libmosquitto's words. The
// client has no packet hook, but it takes a transport factory: this one wraps the TCP and TLS transports it would
// pick itself, and decodes each direction's bytes a second time, for the trace only.
import { Decoder, type Packet, type ProtocolVersion, type TransportFactory } from '@otalink/mqtt';
import { tcpTransport, tlsTransport } from '@otalink/mqtt/transports';

/** A transport for mqtt:// and mqtts:// that writes the trace of each connection to `log`, one line per call. */
export function tracingTransport(version: ProtocolVersion, log: (line: string) => void): TransportFactory {
  return async (target, handlers) => {
    if (target.protocol !== 'mqtt' && target.protocol !== 'mqtts') {
      throw new Error(`-d traces mqtt:// and mqtts:// connections, not ${target.protocol}://`);
    }
    const trace = new PacketTrace(version, log);
    const transport = await (target.protocol === 'mqtts' ? tlsTransport : tcpTransport)(target, {
      data(chunk) {
        trace.received(chunk);
        handlers.data(chunk);
      },
      close(error) {
        handlers.close(error);
      },
      // Backpressure passes through: a traced QoS 0 publisher waits on a slow line as an untraced one does.
      drained() {
        handlers.drained?.();
      },
    });
    return {
      write(chunk) {
        trace.sent(chunk);
        return transport.write(chunk);
      },
      end: () => transport.end(),
      destroy: () => transport.destroy(),
      pause: () => transport.pause?.(),
      resume: () => transport.resume?.(),
    };
  };
}

/** One connection's trace: what we send is decoded as a server reads it, what we receive as a client does. */
export class PacketTrace {
  private readonly out = new Decoder({ role: 'server' });
  private readonly in: Decoder;
  /** The client id as libmosquitto names it: from our CONNECT, or the one the server assigned. */
  private id: string | undefined;
  /** A direction whose bytes stopped decoding is traced no further: its decoder lost the packet boundaries. */
  private readonly broken = { out: false, in: false };
  /** Topic aliases by direction: a PUBLISH that uses one is traced with its topic, as libmosquitto logs it. */
  private readonly aliases = { out: new Map<number, string>(), in: new Map<number, string>() };

  constructor(
    version: ProtocolVersion,
    private readonly log: (line: string) => void,
  ) {
    this.in = new Decoder({ protocolVersion: version, role: 'client' });
  }

  sent(chunk: Uint8Array): void {
    this.decode('out', chunk);
  }

  received(chunk: Uint8Array): void {
    this.decode('in', chunk);
  }

  private decode(direction: 'out' | 'in', chunk: Uint8Array): void {
    if (this.broken[direction]) return;
    const decoder = direction === 'out' ? this.out : this.in;
    const verb = direction === 'out' ? 'sending' : 'received';
    try {
      decoder.push(chunk);
      for (let packet = decoder.next(); packet !== undefined; packet = decoder.next()) {
        const alias = packet.type === 'publish' ? packet.properties?.topicAlias : undefined;
        if (packet.type === 'publish' && alias !== undefined) {
          const known = this.aliases[direction];
          if (packet.topic === '') packet = { ...packet, topic: known.get(alias) ?? '' };
          else known.set(alias, packet.topic);
        }
        if (packet.type === 'connect') this.id = packet.clientId || undefined;
        if (packet.type === 'connack') this.id = packet.properties?.assignedClientIdentifier ?? this.id;
        if (packet.type === 'disconnect' && direction === 'in') {
          // libmosquitto words a server's DISCONNECT differently, without the client id.
          this.log(`Received DISCONNECT (${packet.reasonCode ?? 0})`);
          continue;
        }
        for (const line of describe(packet, direction === 'out'))
          this.log(`Client ${this.id ?? '(null)'} ${verb} ${line}`);
        // mosquitto_sub's own debug line follows libmosquitto's.
        if (packet.type === 'suback')
          this.log(`Subscribed (mid: ${packet.packetId}): ${packet.reasonCodes.join(', ')}`);
      }
    } catch (err) {
      this.broken[direction] = true;
      this.log(`Client ${this.id ?? '(null)'} ${verb} bytes the trace cannot decode: ${(err as Error).message}`);
    }
  }
}

/** libmosquitto's debug lines for a packet (without "Client <id> sending|received"), one per topic for (UN)SUBSCRIBE. */
function describe(p: Packet, sending: boolean): string[] {
  switch (p.type) {
    case 'connack':
      return [`CONNACK (${p.reasonCode})`];
    case 'publish':
      return [
        `PUBLISH (d${+p.dup}, q${p.qos}, r${+p.retain}, m${p.packetId ?? 0}, '${p.topic}', ... (${p.payload.length} bytes))`,
      ];
    case 'puback':
      return [
        sending
          ? `PUBACK (m${p.packetId}, rc${p.reasonCode ?? 0})`
          : `PUBACK (Mid: ${p.packetId}, RC:${p.reasonCode ?? 0})`,
      ];
    case 'pubrec':
      return [sending ? `PUBREC (m${p.packetId}, rc${p.reasonCode ?? 0})` : `PUBREC (Mid: ${p.packetId})`];
    case 'pubrel':
      return [sending ? `PUBREL (m${p.packetId})` : `PUBREL (Mid: ${p.packetId})`];
    case 'pubcomp':
      return [sending ? `PUBCOMP (m${p.packetId})` : `PUBCOMP (Mid: ${p.packetId}, RC:${p.reasonCode ?? 0})`];
    case 'subscribe':
      return p.subscriptions.map((s) => {
        const options = (s.noLocal ? 0x04 : 0) | (s.retainAsPublished ? 0x08 : 0) | ((s.retainHandling ?? 0) << 4);
        const hex = options.toString(16).padStart(2, '0');
        return `SUBSCRIBE (Mid: ${p.packetId}, Topic: ${s.topicFilter}, QoS: ${s.qos}, Options: 0x${hex})`;
      });
    case 'unsubscribe':
      return p.topicFilters.map((f) => `UNSUBSCRIBE (Mid: ${p.packetId}, Topic: ${f})`);
    case 'auth':
      return [sending ? 'AUTH' : `AUTH (${p.reasonCode ?? 0})`];
    case 'connect':
    case 'suback':
    case 'unsuback':
    case 'pingreq':
    case 'pingresp':
    case 'disconnect':
      return [p.type.toUpperCase()];
  }
}
