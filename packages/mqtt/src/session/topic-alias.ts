// Topic aliases (MQTT 5.0 section 3.3.2.3.4). Outgoing: the server's Topic Alias Maximum bounds how many we may
// hold; a Map in insertion order serves as the LRU (touch = delete + set), so the least recently used topic gives
// up its alias when all are taken. Incoming: the aliases the server set, bounded by the maximum we announced.
import { MqttError } from '../codec/errors.js';

export interface AliasChoice {
  alias: number;
  /** False when the server already knows the alias: the topic can be sent empty. */
  sendTopic: boolean;
}

export class OutgoingTopicAliases {
  private readonly byTopic = new Map<string, number>();

  constructor(readonly maximum: number) {}

  choose(topic: string): AliasChoice | undefined {
    if (this.maximum <= 0) return undefined;
    const known = this.byTopic.get(topic);
    if (known !== undefined) {
      this.byTopic.delete(topic);
      this.byTopic.set(topic, known);
      return { alias: known, sendTopic: false };
    }
    let alias: number;
    if (this.byTopic.size < this.maximum) {
      alias = this.byTopic.size + 1;
    } else {
      const [oldest, oldAlias] = this.byTopic.entries().next().value as [string, number];
      this.byTopic.delete(oldest);
      alias = oldAlias;
    }
    this.byTopic.set(topic, alias);
    return { alias, sendTopic: true };
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
      throw new MqttError('MQTT_ERR_PROTOCOL_ERROR', `topic alias ${alias} was never set`, { reasonCode: 0x94 });
    }
    return known;
  }
}
