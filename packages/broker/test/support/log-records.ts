// What the log store tests write and read back: one queued QoS 1 message per payload for a client, its payloads
// in queue order after a load, and the segment files of a data directory.
import { readdirSync } from 'node:fs';
import type { LogStore, Message } from '../../src/index.js';

export function message(payload: string): Message {
  return {
    topic: 't',
    payload: new TextEncoder().encode(payload),
    qos: 1,
    retain: false,
    properties: undefined,
    expiresAt: 0,
    origin: undefined,
  };
}

/** Queues `payload` for `clientId`; returns the queue entry's id. */
export function queue(store: LogStore, clientId: string, payload: string): number {
  const entryId = store.newEntryId();
  const messageId = store.putMessage(message(payload));
  store.enqueue(clientId, entryId, {
    messageId,
    qos: 1,
    retain: false,
    subscriptionIds: undefined,
    sharedFilter: undefined,
  });
  return entryId;
}

export function payloads(contents: Awaited<ReturnType<LogStore['load']>>, clientId: string): string[] {
  const session = contents.sessions.get(clientId);
  if (session === undefined) return [];
  return [...session.queue.values()].map((d) => new TextDecoder().decode(contents.messages.get(d.messageId)?.payload));
}

export function segments(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.startsWith('segment-'))
    .sort();
}
