// The decoders connections read with. A connection takes one when a read arrives and gives it back once everything
// read is decoded: an idle connection holds none (a Decoder is 160 bytes, a good share of an idle connection), and
// a broker in its steady state makes none per read. Decoding is synchronous, so the few in use at once are the
// connections holding part of a packet or paused mid-read (authentication, output pushback), plus one.
import { Decoder, type ProtocolVersion } from '@otalink/mqtt/codec';

/** Idle decoders kept beyond this many are left to the garbage collector. */
const MAX_IDLE = 16;

const idle: Decoder[] = [];

/**
 * A server-role decoder for a connection in this state: its protocol version is undefined until its CONNECT was
 * decoded, and known (with `connectSeen`) after.
 */
export function takeDecoder(
  protocolVersion: ProtocolVersion | undefined,
  connectSeen: boolean,
  maximumPacketSize: number,
): Decoder {
  const decoder = idle.pop() ?? new Decoder({ role: 'server' });
  decoder.restart(protocolVersion, connectSeen, maximumPacketSize);
  return decoder;
}

/** Takes back a decoder its connection no longer uses; what it still buffers is dropped. */
export function giveDecoder(decoder: Decoder): void {
  if (idle.length >= MAX_IDLE) return;
  // Holding nothing while idle: no chunk of the last connection stays reachable from the pool.
  decoder.restart(undefined, false, 0);
  idle.push(decoder);
}

/** How many idle decoders the pool holds (for tests). */
export function idleDecoderCount(): number {
  return idle.length;
}
