// Framing-only reader for the measured phase: finds packet boundaries from the fixed header and reads just the
// packet id of PUBLISH/PUBACK, without decoding properties or copying payloads. With up to 1000 sockets and
// hundreds of thousands of packets a second in a process that shares 2 cores with the broker, full decoding would
// make the generator the bottleneck. Every other packet (CONNACK, SUBACK...) goes to `control` whole, where the
// caller decodes it with our Decoder.

export interface FrameSink {
  /** A PUBLISH: payload is buf[payloadStart, end). */
  publish(qos: number, packetId: number, buf: Buffer, payloadStart: number, end: number): void;
  puback(packetId: number): void;
  control(frame: Buffer): void;
}

export class Framer {
  private carry: Buffer | undefined;

  constructor(private readonly sink: FrameSink) {}

  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.carry !== undefined) {
      buf = Buffer.concat([this.carry, chunk]);
      this.carry = undefined;
    }
    const n = buf.length;
    let p = 0;
    while (n - p >= 2) {
      let length = 0;
      let multiplier = 1;
      let q = p + 1;
      let complete = false;
      for (let i = 0; i < 4 && q < n; i++) {
        const byte = buf[q++] as number;
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        if ((byte & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) {
        if (q - p > 4) throw new Error('malformed remaining length from broker');
        break;
      }
      const end = q + length;
      if (end > n) break;
      const first = buf[p] as number;
      const type = first >> 4;
      if (type === 3) {
        const qos = (first >> 1) & 3;
        const topicLength = ((buf[q] as number) << 8) | (buf[q + 1] as number);
        let payloadStart = q + 2 + topicLength;
        let packetId = 0;
        if (qos > 0) {
          packetId = ((buf[payloadStart] as number) << 8) | (buf[payloadStart + 1] as number);
          payloadStart += 2;
        }
        this.sink.publish(qos, packetId, buf, payloadStart, end);
      } else if (type === 4) {
        this.sink.puback(((buf[q] as number) << 8) | (buf[q + 1] as number));
      } else {
        this.sink.control(buf.subarray(p, end));
      }
      p = end;
    }
    // Copy the tail so a large chunk is not kept alive by a few bytes of it.
    if (p < n) this.carry = Buffer.from(buf.subarray(p));
  }
}
