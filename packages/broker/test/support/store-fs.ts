// File systems for the durable store that a test can steer: one whose fdatasync calls wait until released, one whose
// fdatasync calls fail (EIO) while told to, and one that fills up (writes fail with ENOSPC and no space is reported)
// until freed.
import { nodeStoreFs, type StoreFs } from '../../src/index.js';

/** While held, every fdatasync waits; release() lets them all run, in the order they came. */
export function heldSyncs(): { fs: StoreFs; hold(): void; release(): void } {
  let holding = false;
  let held: Array<() => void> = [];
  const fs: StoreFs = {
    ...nodeStoreFs,
    fdatasync: (fd) => {
      if (!holding) return nodeStoreFs.fdatasync(fd);
      return new Promise<void>((resolve, reject) => {
        held.push(() => nodeStoreFs.fdatasync(fd).then(resolve, reject));
      });
    },
  };
  return {
    fs,
    hold: () => {
      holding = true;
    },
    release: () => {
      holding = false;
      const waiting = held;
      held = [];
      for (const run of waiting) run();
    },
  };
}

/** While failing, every fdatasync rejects with EIO (the write before it went through). */
export function failingSyncs(): { fs: StoreFs; fail(on: boolean): void } {
  let failing = false;
  const fs: StoreFs = {
    ...nodeStoreFs,
    fdatasync: (fd) =>
      failing ? Promise.reject(Object.assign(new Error('I/O error'), { code: 'EIO' })) : nodeStoreFs.fdatasync(fd),
  };
  return {
    fs,
    fail: (on) => {
      failing = on;
    },
  };
}

/** A disk that refuses writes (ENOSPC) while full, and reports no free space meanwhile. */
export function fillableDisk(): { fs: StoreFs; fill(): void; free(): void } {
  let full = false;
  const fs: StoreFs = {
    ...nodeStoreFs,
    writeSync: (fd, buffer, offset, length, position) => {
      if (full) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
      return nodeStoreFs.writeSync(fd, buffer, offset, length, position);
    },
    freeBytes: () => (full ? 0 : 1e12),
  };
  return {
    fs,
    fill: () => {
      full = true;
    },
    free: () => {
      full = false;
    },
  };
}
