// Topic aliases (MQTT 5.0 section 3.3.2.3.4). Outgoing: the server's Topic Alias Maximum bounds how many we may
// hold; a Map in insertion order serves as the LRU (touch = delete + set), so the least recently used topic gives
// up its alias when all are taken. A second map by alias keeps the table one-to-one: an alias the caller binds
// itself must unbind whatever topic held it, or later messages to that topic would be sent under an alias the
// server now resolves to another topic. Incoming: the aliases the server set, bounded by the maximum we announced.
import { MqttError } from '../codec/errors.js';

export interface AliasChoice {
  readonly alias: number;
  /** False when the server already knows the alias: the topic can be sent empty. */
  readonly sendTopic: boolean;
  /** `{ topicAlias: alias }`, the PUBLISH properties that say just that (shared: never to be modified). */
  readonly properties: { readonly topicAlias: number };
}

export class OutgoingTopicAliases {
  private readonly byTopic = new Map<string, number>();
  private readonly byAlias = new Map<number, string>();
  /** No alias below this one is free, except any freed since (which lower it again). */
  private lowestFree = 1;
  /** The topic used last, already at the LRU's end: a stream to one topic costs no delete + set per message. */
  private newest: string | undefined;
  /** By alias, the choice to send a topic the server already knows: a stream of messages allocates none. */
  private readonly knownChoices: AliasChoice[] = [];

  /**
   * @param maximum the server's Topic Alias Maximum (0: none allowed).
   * @param automatic whether `choose` assigns aliases itself; a caller's aliases are recorded either way.
   */
  constructor(
    readonly maximum: number,
    readonly automatic = true,
  ) {}

  /** The alias to send `topic` with, assigning one when allowed; undefined to send the topic alone. */
  choose(topic: string): AliasChoice | undefined {
    if (this.maximum <= 0 || !this.automatic) return undefined;
    const known = this.byTopic.get(topic);
    if (known !== undefined) {
      this.touch(topic, known);
      return this.knownChoice(known);
    }
    let alias = this.freeAlias();
    if (alias === undefined) {
      const [oldest, oldAlias] = this.byTopic.entries().next().value as [string, number];
      this.byTopic.delete(oldest);
      alias = oldAlias;
    }
    return this.bindNew(topic, alias);
  }

  /** Binds `topic` to `alias`: the server learns it from this message, which carries the topic in full. */
  private bindNew(topic: string, alias: number): AliasChoice {
    this.bind(topic, alias);
    return { alias, sendTopic: true, properties: this.knownChoice(alias).properties };
  }

  private knownChoice(alias: number): AliasChoice {
    let choice = this.knownChoices[alias];
    if (choice === undefined) {
      choice = { alias, sendTopic: false, properties: { topicAlias: alias } };
      this.knownChoices[alias] = choice;
    }
    return choice;
  }

  /**
   * Records an alias the caller chose for `topic`. Throws MQTT_ERR_INVALID_OPTION outside 1..maximum (the server
   * would close the connection with 0x94 for it).
   */
  assign(topic: string, alias: number): AliasChoice {
    if (!Number.isInteger(alias) || alias < 1 || alias > this.maximum) {
      throw new MqttError(
        'MQTT_ERR_INVALID_OPTION',
        `topic alias ${alias} is outside the server's Topic Alias Maximum (1..${this.maximum})`,
        { reasonCode: 0x94 },
      );
    }
    if (this.byTopic.get(topic) === alias) {
      this.touch(topic, alias);
      return this.knownChoice(alias);
    }
    const previousTopic = this.byAlias.get(alias);
    if (previousTopic !== undefined) this.byTopic.delete(previousTopic);
    const previousAlias = this.byTopic.get(topic);
    if (previousAlias !== undefined) {
      // The server keeps the old binding, but nothing of ours uses it any more: free for the next topic.
      this.byAlias.delete(previousAlias);
      this.lowestFree = Math.min(this.lowestFree, previousAlias);
    }
    return this.bindNew(topic, alias);
  }

  /** The alias `topic` is bound to, if any (for tests and diagnostics). */
  aliasOf(topic: string): number | undefined {
    return this.byTopic.get(topic);
  }

  private touch(topic: string, alias: number): void {
    if (topic === this.newest) return;
    this.byTopic.delete(topic);
    this.byTopic.set(topic, alias);
    this.newest = topic;
  }

  private bind(topic: string, alias: number): void {
    this.byTopic.delete(topic);
    this.byTopic.set(topic, alias);
    this.byAlias.set(alias, topic);
    this.newest = topic;
  }

  private freeAlias(): number | undefined {
    if (this.byAlias.size >= this.maximum) return undefined;
    while (this.lowestFree <= this.maximum && this.byAlias.has(this.lowestFree)) this.lowestFree++;
    return this.lowestFree <= this.maximum ? this.lowestFree : undefined;
  }
}

export class IncomingTopicAliases {
  private readonly topics = new Map<number, string>();

  constructor(readonly maximum: number) {}

  /** Returns the topic the PUBLISH is for, learning the alias when it carries both. */
  resolve(topic: string, alias: number | undefined): string {
    if (alias === undefined) return topic;
    if (alias < 1 || alias > this.maximum) {
      throw new MqttError('MQTT_ERR_PROTOCOL_ERROR', `topic alias ${alias} outside 1..${this.maximum}`, {
        reasonCode: 0x94,
      });
    }
    if (topic.length > 0) {
      this.topics.set(alias, topic);
      return topic;
    }
    const known = this.topics.get(alias);
    if (known === undefined) {
      // Not 0x94, which names an alias above our maximum: an alias used before it was set is a Protocol Error.
      throw new MqttError('MQTT_ERR_PROTOCOL_ERROR', `topic alias ${alias} was never set`, { reasonCode: 0x82 });
    }
    return known;
  }
}
