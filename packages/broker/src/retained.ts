// Retained messages indexed by topic level, so a wildcard SUBSCRIBE walks only the branches its filter can match
// instead of testing every retained topic (a fleet resubscribing `ota/{vin}/#` after an outage must not cost
// vehicles x retained topics).
import { isExpired, type Message } from './message.js';

interface Node {
  readonly parent: Node | undefined;
  readonly level: string;
  readonly children: Map<string, Node>;
  message: Message | undefined;
}

function newNode(parent: Node | undefined, level: string): Node {
  return { parent, level, children: new Map(), message: undefined };
}

export class RetainedStore {
  readonly #root = newNode(undefined, '');
  readonly #byTopic = new Map<string, Node>();
  /** Told of each message removed because it expired (the broker clears it from its store too). */
  onExpired: ((message: Message) => void) | undefined = undefined;

  get size(): number {
    return this.#byTopic.size;
  }

  get(topic: string): Message | undefined {
    return this.#byTopic.get(topic)?.message;
  }

  has(topic: string): boolean {
    return this.#byTopic.has(topic);
  }

  set(message: Message): void {
    const known = this.#byTopic.get(message.topic);
    if (known !== undefined) {
      known.message = message;
      return;
    }
    let node: Node = this.#root;
    for (const level of message.topic.split('/')) {
      let child: Node | undefined = node.children.get(level);
      if (child === undefined) {
        child = newNode(node, level);
        node.children.set(level, child);
      }
      node = child;
    }
    this.#byTopic.set(message.topic, node);
    node.message = message;
  }

  delete(topic: string): boolean {
    const node = this.#byTopic.get(topic);
    if (node === undefined) return false;
    this.#byTopic.delete(topic);
    node.message = undefined;
    // Prune the branch so deleted topics do not leave empty nodes behind.
    let current: Node = node;
    while (current.parent !== undefined && current.message === undefined && current.children.size === 0) {
      current.parent.children.delete(current.level);
      current = current.parent;
    }
    return true;
  }

  /** Messages whose topic matches `filter` (a valid, non-shared filter); expired ones are removed on the way. */
  match(filter: string, now: number): Message[] {
    const out: Message[] = [];
    if (!filter.includes('+') && !filter.includes('#')) {
      const message = this.get(filter);
      if (message !== undefined) this.#collect(message, now, out);
      return out;
    }
    const levels = filter.split('/');
    this.#walk(this.#root, levels, 0, now, out);
    return out;
  }

  #collect(message: Message, now: number, out: Message[]): void {
    if (!isExpired(message, now)) {
      out.push(message);
      return;
    }
    this.delete(message.topic);
    this.onExpired?.(message);
  }

  #walk(node: Node, levels: string[], index: number, now: number, out: Message[]): void {
    if (index === levels.length) {
      if (node.message !== undefined) this.#collect(node.message, now, out);
      return;
    }
    const level = levels[index]!;
    // A leading wildcard never matches a topic starting with $ (MQTT-4.7.2-1).
    const skipDollar = index === 0;
    if (level === '#') {
      // `a/#` also matches `a` itself.
      if (index > 0 && node.message !== undefined) this.#collect(node.message, now, out);
      for (const child of [...node.children.values()]) {
        if (skipDollar && child.level.startsWith('$')) continue;
        this.#all(child, now, out);
      }
      return;
    }
    if (level === '+') {
      for (const child of [...node.children.values()]) {
        if (skipDollar && child.level.startsWith('$')) continue;
        this.#walk(child, levels, index + 1, now, out);
      }
      return;
    }
    const child = node.children.get(level);
    if (child !== undefined) this.#walk(child, levels, index + 1, now, out);
  }

  #all(node: Node, now: number, out: Message[]): void {
    if (node.message !== undefined) this.#collect(node.message, now, out);
    for (const child of [...node.children.values()]) this.#all(child, now, out);
  }
}
