// Loads the Node-only file store on demand, so the client module stays importable in a browser.
import type { FileStoreOptions } from './file-store.js';
import type { MessageStore } from './store.js';

export async function openFileStore(path: string, options: FileStoreOptions = {}): Promise<MessageStore> {
  const { FileStore } = await import('./file-store.js');
  return FileStore.open(path, options);
}
