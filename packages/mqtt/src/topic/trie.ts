// Subscription index for a broker: which (subscriber, filter) pairs a published topic reaches.
//
// Filters without wildcards, the common case for device fleets, are answered by one Map lookup on the whole topic.
// Only filters with + or # go into a trie by level, and the trie is walked only while it holds any. Walking keeps
// indices into the topic; the one allocation per level is the substring used as a Map key for literal children.
//
// Shared subscriptions are not this structure's concern: the broker strips `$share/{group}/` (parseSharedSubscription)
// and adds the inner filter keyed by the group, then picks one member per group among the keys `match` visits.
// A filter handed in with its `$share/` prefix is treated literally and would only match topics starting `$share/`.

import { MqttError } from '../codec/errors.js';
import { topicFilterProblem } from './validate.js';

const PLUS = 0x2b; // '+'
const HASH = 0x23; // '#'
const SLASH = 0x2f; // '/'
const DOLLAR = 0x24; // '$'

/**
 * All subscriptions to one filter. Most filters have one subscriber (a device's own topics): that one lives in the
 * bucket itself (`key`, `value`), and a Map is made only for a second one, which saves a Map and its table (~0.2 KB)
 * per filter and the Map iteration on every match. A wildcard bucket does not point to its trie node: removing it
 * walks the filter's levels again, and the bucket of every idle device's subscription is 16 B smaller.
 */
interface Bucket<K, V> {
  readonly filter: string;
  /** The only subscriber, or NO_KEY (none, or `many` holds them). */
  key: K | typeof NO_KEY;
  value: V | undefined;
  /** Every subscriber, once there have been two at the same time (`key` is then NO_KEY). */
  many: Map<K, V> | undefined;
}

interface TrieNode<K, V> {
  readonly parent: TrieNode<K, V> | undefined;
  /** This node's level in its parent: the literal text, or '+' for the parent's `plus` child. */
  readonly level: string;
  children: Map<string, TrieNode<K, V>> | undefined;
  plus: TrieNode<K, V> | undefined;
  /** Filters ending at this node (their last level is this node's level). */
  end: Bucket<K, V> | undefined;
  /** Filters ending with `#` right below this node. */
  hash: Bucket<K, V> | undefined;
}

/** A bucket's `key` while it has not exactly one subscriber: a marker no key can be, so no flag is needed. */
const NO_KEY: unique symbol = Symbol('no key');

function newBucket<K, V>(filter: string): Bucket<K, V> {
  return { filter, key: NO_KEY, value: undefined, many: undefined };
}

/** Sets `key`'s value; returns whether the key is new to the bucket. */
function bucketSet<K, V>(bucket: Bucket<K, V>, key: K, value: V): boolean {
  const many = bucket.many;
  if (many !== undefined) {
    const before = many.size;
    many.set(key, value);
    return many.size !== before;
  }
  if (bucket.key === NO_KEY) {
    bucket.key = key;
    bucket.value = value;
    return true;
  }
  if (bucket.key === key) {
    bucket.value = value;
    return false;
  }
  // Insertion order is kept: the first subscriber stays first.
  bucket.many = new Map<K, V>([
    [bucket.key, bucket.value as V],
    [key, value],
  ]);
  bucket.key = NO_KEY;
  bucket.value = undefined;
  return true;
}

function bucketDelete<K, V>(bucket: Bucket<K, V>, key: K): boolean {
  const many = bucket.many;
  if (many === undefined) {
    if (bucket.key === NO_KEY || bucket.key !== key) return false;
    bucket.key = NO_KEY;
    bucket.value = undefined;
    return true;
  }
  if (!many.delete(key)) return false;
  if (many.size === 1) {
    // Back to one subscriber: the Map goes.
    for (const [k, v] of many) {
      bucket.key = k;
      bucket.value = v;
    }
    bucket.many = undefined;
  }
  return true;
}

function bucketEmpty<K, V>(bucket: Bucket<K, V>): boolean {
  return bucket.key === NO_KEY && (bucket.many === undefined || bucket.many.size === 0);
}

function bucketGet<K, V>(bucket: Bucket<K, V> | undefined, key: K): V | undefined {
  if (bucket === undefined) return undefined;
  if (bucket.many !== undefined) return bucket.many.get(key);
  return bucket.key !== NO_KEY && bucket.key === key ? bucket.value : undefined;
}

function bucketHas<K, V>(bucket: Bucket<K, V> | undefined, key: K): boolean {
  if (bucket === undefined) return false;
  if (bucket.many !== undefined) return bucket.many.has(key);
  return bucket.key !== NO_KEY && bucket.key === key;
}

function newNode<K, V>(parent: TrieNode<K, V> | undefined, level: string): TrieNode<K, V> {
  return { parent, level, children: undefined, plus: undefined, end: undefined, hash: undefined };
}

/** Whether a valid filter's last level is `#` (it can be nowhere else). */
function endsWithHash(filter: string): boolean {
  return filter.charCodeAt(filter.length - 1) === HASH;
}

function isWildcardFilter(filter: string): boolean {
  // A valid filter has + or # only as whole levels, so any occurrence makes it a wildcard filter.
  return filter.includes('+') || filter.includes('#');
}

export type SubscriptionVisitor<K, V> = (key: K, value: V, filter: string) => void;

/**
 * Maps topic filters to subscribers. `K` identifies a subscriber (a session, or a share group), `V` is what the
 * broker needs to deliver (options such as QoS and No Local). A key subscribes to a filter at most once; a key may
 * match one topic through several filters, and `match` reports each (key, filter) pair, leaving the per-key merge
 * (highest QoS, subscription identifiers) to the broker.
 */
export class SubscriptionTrie<K, V> {
  /** Every exact filter with at least one entry: a topic is looked up here directly. */
  readonly #exact = new Map<string, Bucket<K, V>>();
  /** Every wildcard filter with at least one entry, to find its bucket in the trie without walking it. */
  readonly #wildcard = new Map<string, Bucket<K, V>>();
  readonly #root: TrieNode<K, V> = newNode<K, V>(undefined, '');
  #size = 0;
  #wildcardFilters = 0;
  #nodes = 0;

  /** Number of (filter, key) entries. */
  get size(): number {
    return this.#size;
  }

  /**
   * Subscribes `key` to `filter` with `value`. Returns true when the pair is new, false when it replaced the value
   * of an existing one. Throws MQTT_ERR_EMPTY_TOPIC_FILTER or MQTT_ERR_INVALID_TOPIC_FILTER for a filter that is not
   * valid taken literally (the trie's shape relies on # being last and wildcards filling whole levels).
   */
  add(filter: string, key: K, value: V): boolean {
    let bucket = this.#bucket(filter);
    if (bucket === undefined) {
      const problem = topicFilterProblem(filter);
      if (problem !== undefined) {
        throw filter.length === 0
          ? new MqttError('MQTT_ERR_EMPTY_TOPIC_FILTER', problem, { reasonCode: 0x81 })
          : new MqttError('MQTT_ERR_INVALID_TOPIC_FILTER', `${problem}: "${filter}"`, { reasonCode: 0x8f });
      }
      if (isWildcardFilter(filter)) {
        bucket = this.#insert(filter);
        this.#wildcard.set(filter, bucket);
      } else {
        bucket = newBucket<K, V>(filter);
        this.#exact.set(filter, bucket);
      }
    }
    if (!bucketSet(bucket, key, value)) return false;
    this.#size++;
    return true;
  }

  /** Unsubscribes `key` from `filter`. Returns whether the pair existed. */
  remove(filter: string, key: K): boolean {
    const bucket = this.#bucket(filter);
    if (bucket === undefined || !bucketDelete(bucket, key)) return false;
    this.#size--;
    if (bucketEmpty(bucket)) {
      if (this.#exact.delete(filter)) return true;
      this.#wildcard.delete(filter);
      this.#detach(filter);
    }
    return true;
  }

  /**
   * Calls `visit` once for every (key, filter) pair whose filter matches `topic`, a valid topic name. A topic
   * starting with `$` is not matched by filters whose first level is + or #. `visit` must not add or remove
   * subscriptions; collect them and change the trie afterwards.
   */
  match(topic: string, visit: SubscriptionVisitor<K, V>): void {
    // An (invalid) topic spelled like a wildcard filter finds nothing here: wildcard filters are kept apart.
    const exact = this.#exact.get(topic);
    if (exact !== undefined) emit(exact, visit);
    if (this.#wildcardFilters === 0) return;
    const root = this.#root;
    if (topic.charCodeAt(0) === DOLLAR) {
      // Only literal first levels may match $ topics (MQTT-4.7.2-1), so skip the root's + and # branches.
      if (root.children === undefined) return;
      let end = topic.indexOf('/');
      if (end === -1) end = topic.length;
      const child = root.children.get(topic.slice(0, end));
      if (child !== undefined) walk(child, topic, end + 1, visit);
      return;
    }
    walk(root, topic, 0, visit);
  }

  /** The filters with at least one subscriber. Do not modify the trie while iterating. */
  *filters(): IterableIterator<string> {
    yield* this.#exact.keys();
    yield* this.#wildcard.keys();
  }

  /** Whether `key` is subscribed to `filter`. */
  has(filter: string, key: K): boolean {
    return bucketHas(this.#bucket(filter), key);
  }

  /** The value stored for `key` under `filter`. */
  get(filter: string, key: K): V | undefined {
    return bucketGet(this.#bucket(filter), key);
  }

  #bucket(filter: string): Bucket<K, V> | undefined {
    return this.#exact.get(filter) ?? this.#wildcard.get(filter);
  }

  clear(): void {
    this.#exact.clear();
    this.#wildcard.clear();
    const root = this.#root;
    root.children = undefined;
    root.plus = undefined;
    root.hash = undefined;
    this.#size = 0;
    this.#wildcardFilters = 0;
    this.#nodes = 0;
  }

  /** Trie nodes below the root, for tests and memory diagnostics: zero once every wildcard filter is removed. */
  nodeCount(): number {
    return this.#nodes;
  }

  /** Creates the trie path for a new wildcard filter and the bucket at its end. */
  #insert(filter: string): Bucket<K, V> {
    const bucket = newBucket<K, V>(filter);
    const node = this.#holder(filter, true);
    if (endsWithHash(filter)) node.hash = bucket;
    else node.end = bucket;
    this.#wildcardFilters++;
    return bucket;
  }

  /**
   * The node that holds wildcard filter `filter`'s bucket: the node of its last level, or for a filter ending in `#`
   * the node of the level before it. `create`: made where missing (#insert); otherwise the path must exist (#detach).
   */
  #holder(filter: string, create: boolean): TrieNode<K, V> {
    const hash = endsWithHash(filter);
    let node = this.#root;
    if (hash && filter.length === 1) return node; // '#' alone hangs from the root
    // The levels before `/#`, or all of them.
    const length = hash ? filter.length - 2 : filter.length;
    for (let start = 0; start <= length; ) {
      let end = filter.indexOf('/', start);
      if (end === -1) end = length;
      node = create ? this.#child(node, filter, start, end) : this.#existingChild(node, filter, start, end);
      start = end + 1;
    }
    return node;
  }

  #child(node: TrieNode<K, V>, filter: string, start: number, end: number): TrieNode<K, V> {
    if (end - start === 1 && filter.charCodeAt(start) === PLUS) {
      if (node.plus === undefined) {
        node.plus = newNode(node, '+');
        this.#nodes++;
      }
      return node.plus;
    }
    const level = filter.slice(start, end);
    node.children ??= new Map();
    let child = node.children.get(level);
    if (child === undefined) {
      child = newNode(node, level);
      node.children.set(level, child);
      this.#nodes++;
    }
    return child;
  }

  #existingChild(node: TrieNode<K, V>, filter: string, start: number, end: number): TrieNode<K, V> {
    const child =
      end - start === 1 && filter.charCodeAt(start) === PLUS ? node.plus : node.children?.get(filter.slice(start, end));
    return child!;
  }

  /**
   * Removes the emptied bucket of wildcard filter `filter` from the trie, finding its node as #insert made it, and
   * prunes the nodes it leaves empty, so churn does not grow memory.
   */
  #detach(filter: string): void {
    let node = this.#holder(filter, false);
    if (endsWithHash(filter)) node.hash = undefined;
    else node.end = undefined;
    this.#wildcardFilters--;
    for (;;) {
      const parent = node.parent;
      if (parent === undefined) break; // the root stays
      if (node.end !== undefined || node.hash !== undefined || node.plus !== undefined) break;
      if (node.children !== undefined && node.children.size > 0) break;
      if (parent.plus === node) {
        parent.plus = undefined;
      } else {
        parent.children!.delete(node.level);
        if (parent.children!.size === 0) parent.children = undefined;
      }
      this.#nodes--;
      node = parent;
    }
  }
}

function emit<K, V>(bucket: Bucket<K, V>, visit: SubscriptionVisitor<K, V>): void {
  const filter = bucket.filter;
  const key = bucket.key;
  if (key !== NO_KEY) {
    visit(key, bucket.value as V, filter);
    return;
  }
  const many = bucket.many;
  if (many !== undefined) for (const [key, value] of many) visit(key, value, filter);
}

/**
 * Visits the buckets under `node` that match the rest of `topic` from index `start`, the beginning of the next level.
 * `start > topic.length` means every level has been consumed. Each node is reached at most once per topic (its path
 * fixes which level each edge consumed), so each bucket is visited at most once.
 */
function walk<K, V>(node: TrieNode<K, V>, topic: string, start: number, visit: SubscriptionVisitor<K, V>): void {
  // `#` below this node matches whatever remains, including nothing (`a/#` matches `a`).
  if (node.hash !== undefined) emit(node.hash, visit);
  const length = topic.length;
  if (start > length) {
    if (node.end !== undefined) emit(node.end, visit);
    return;
  }
  let end = start;
  while (end < length && topic.charCodeAt(end) !== SLASH) end++;
  if (node.plus !== undefined) walk(node.plus, topic, end + 1, visit);
  if (node.children !== undefined) {
    const child = node.children.get(topic.slice(start, end));
    if (child !== undefined) walk(child, topic, end + 1, visit);
  }
}
