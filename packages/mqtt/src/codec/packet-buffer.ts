// Buffers for encoded packets and decoded payloads on Node, without Buffer.allocUnsafe's and Buffer#subarray's
// per-call overhead (argument validation, a native `.buffer` lookup, a generic construct). Node's Buffer is found
// through globalThis, so browsers load this module and get plain Uint8Arrays.

type ViewConstructor = new (memory: ArrayBuffer, offset: number, length: number) => Uint8Array;

interface NodeBufferClass {
  new (): Uint8Array;
  allocUnsafe(size: number): Uint8Array;
  allocUnsafeSlow(size: number): Uint8Array;
}

const NodeBuffer = (globalThis as unknown as { Buffer?: NodeBufferClass }).Buffer;

/**
 * Node's own Buffer class (Buffer[Symbol.species], what Buffer#subarray constructs): a view of an ArrayBuffer
 * that is a Buffer in every respect. Undefined where there is no such Buffer.
 */
const BufferView: ViewConstructor | undefined = (() => {
  if (NodeBuffer === undefined) return undefined;
  const species = (NodeBuffer as unknown as Record<symbol, unknown>)[Symbol.species];
  if (typeof species !== 'function') return undefined;
  try {
    const probe = new (species as ViewConstructor)(new ArrayBuffer(8), 4, 2);
    return probe instanceof NodeBuffer && probe.byteOffset === 4 && probe.length === 2
      ? (species as ViewConstructor)
      : undefined;
  } catch {
    return undefined;
  }
})();

// Packets up to SLAB_PACKET_MAX bytes are cut from a shared slab, as Node's pool does for Buffer.allocUnsafe,
// but a larger one: a new ArrayBuffer (a malloc, later a free) every 31 packets of 1 KiB rather than every 7.
// A packet kept alive keeps its slab alive, as with any pooled Buffer.
const SLAB_BYTES = 32 * 1024;
const SLAB_PACKET_MAX = 4 * 1024;
let slab = new ArrayBuffer(0);
let slabUsed = 0;
let slabFree = 0;

/**
 * A buffer for one encoded packet of `size` bytes, every one of which the encoder writes (so nothing stale is
 * visible through it). On Node a Buffer, its `.buffer` shared with other packets as with any pooled Buffer;
 * elsewhere a plain Uint8Array.
 */
export function allocatePacket(size: number): Uint8Array {
  if (BufferView === undefined) return NodeBuffer === undefined ? new Uint8Array(size) : NodeBuffer.allocUnsafe(size);
  if (size > SLAB_PACKET_MAX) return NodeBuffer!.allocUnsafe(size);
  if (size > slabFree) {
    // Not zero-filled, as Node's pool: the encoder writes every byte of each packet cut from it.
    slab = NodeBuffer!.allocUnsafeSlow(SLAB_BYTES).buffer as ArrayBuffer;
    slabUsed = 0;
    slabFree = SLAB_BYTES;
  }
  const packet = new BufferView(slab, slabUsed, size);
  const taken = Math.min((size + 7) & ~7, slabFree); // 8-byte aligned, as Node's pool
  slabUsed += taken;
  slabFree -= taken;
  return packet;
}

/** Whether views of `buf` are made by `bufferView` (a Node Buffer) rather than `buf.subarray`. */
export function viewsAsBuffer(buf: Uint8Array): boolean {
  return BufferView !== undefined && buf instanceof NodeBuffer!;
}

/** `length` bytes of `memory` from `offset` as a Buffer; only where viewsAsBuffer said true. */
export function bufferView(memory: ArrayBuffer, offset: number, length: number): Uint8Array {
  return new BufferView!(memory, offset, length);
}
