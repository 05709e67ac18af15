// What a browser build gets for the Node-only store modules: package.json's "browser" field maps
// open-file-store.ts and file-default.ts here. A page has no file system; without the map a bundler that follows
// the imports would pull node:fs into the bundle. A browser app keeps its messages in a MemoryStore or in a
// MessageStore of its own (IndexedDB, say), and has no default store.
import { MqttError } from '../../codec/errors.js';
import type { MessageStore } from './store.js';

export async function openFileStore(path: string): Promise<MessageStore> {
  throw new MqttError(
    'MQTT_ERR_INVALID_OPTION',
    `a file store (${path}) needs a file system, which a browser does not have: use a MemoryStore or a MessageStore of your own`,
  );
}

export function defaultStorePath(): string | undefined {
  return undefined;
}
