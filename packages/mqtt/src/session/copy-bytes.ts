/**
 * Copies of the payloads the session keeps while the application may reuse its buffer.
 *
 * Small payloads are copied into a shared slab, as Node's Buffer pool does: an ArrayBuffer per message (each kept until
 * its PUBACK, so it outlives the young generation) cost more CPU than the rest of a QoS 1 publish to a fast broker.
 * A slab lives as long as its longest-kept message: one stuck message holds at most SLAB_BYTES.
 */
const SLAB_BYTES = 8 * 1024;
const SLAB_MAX_COPY = 1024;
let slab = new Uint8Array(0);
let slabUsed = 0;

export function copyBytes(v: Uint8Array): Uint8Array {
  const n = v.length;
  if (n > SLAB_MAX_COPY) return new Uint8Array(v);
  if (slabUsed + n > slab.length) {
    slab = new Uint8Array(SLAB_BYTES);
    slabUsed = 0;
  }
  const copy = slab.subarray(slabUsed, slabUsed + n);
  copy.set(v);
  // 8-byte aligned, as the pool does: views of one slab do not share a word.
  slabUsed += (n + 7) & ~7;
  return copy;
}
