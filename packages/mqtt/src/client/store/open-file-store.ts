// Loads the Node-only file store on demand, so the client module stays importable in a browser.
import type { FileStore, FileStoreOptions } from './file-store.js';

/** The store itself: its `skippedLines` (damaged lines dropped at open) and `compacting` are there to read too. */
export async function openFileStore(path: string, options: FileStoreOptions = {}): Promise<FileStore> {
  const { FileStore } = await import('./file-store.js');
  return FileStore.open(path, options);
}
