// Topic name and topic filter rules (MQTT 3.1.1 section 4.7, MQTT 5.0 section 4.7 and 4.8.2).
import { MqttError } from '../codec/errors.js';

const PLUS = 0x2b; // '+'
const HASH = 0x23; // '#'
const SLASH = 0x2f; // '/'

/** Why `topic` is not a valid topic name, or undefined when it is. An empty name is the caller's call (aliases). */
export function topicNameProblem(topic: string): string | undefined {
  for (let i = 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i);
    if (c === PLUS || c === HASH) return 'a topic name must not contain the wildcards + or #';
    if (c === 0) return 'a topic name must not contain U+0000';
  }
  return undefined;
}

/** The last name found valid: a device publishes to a few topics over and over, and a string never changes. */
let lastValidName: string | undefined;

export function validateTopicName(topic: string): void {
  if (topic === lastValidName) return;
  if (typeof topic !== 'string') {
    throw new MqttError('MQTT_ERR_INVALID_TOPIC_NAME', `a topic name must be a string, got ${typeName(topic)}`, {
      reasonCode: 0x90,
    });
  }
  if (topic.length === 0) {
    throw new MqttError('MQTT_ERR_INVALID_TOPIC_NAME', 'a topic name must not be empty', { reasonCode: 0x90 });
  }
  const problem = topicNameProblem(topic);
  if (problem !== undefined) {
    throw new MqttError('MQTT_ERR_INVALID_TOPIC_NAME', `${problem}: "${topic}"`, { reasonCode: 0x90 });
  }
  lastValidName = topic;
}

export function isValidTopicName(topic: string): boolean {
  return topic.length > 0 && topicNameProblem(topic) === undefined;
}

/**
 * Why `filter`, taken literally (no $share parsing), is not a valid topic filter, or undefined when it is. Unlike
 * topicNameProblem, an empty filter is a problem: no packet may carry one.
 */
export function topicFilterProblem(filter: string): string | undefined {
  if (filter.length === 0) return 'a topic filter must not be empty';
  const last = filter.length - 1;
  for (let i = 0; i <= last; i++) {
    const c = filter.charCodeAt(i);
    if (c === HASH) {
      if (i !== last) return '# must be the last character of a topic filter';
      if (i > 0 && filter.charCodeAt(i - 1) !== SLASH) return '# must occupy a whole topic level';
    } else if (c === PLUS) {
      if ((i > 0 && filter.charCodeAt(i - 1) !== SLASH) || (i < last && filter.charCodeAt(i + 1) !== SLASH)) {
        return '+ must occupy a whole topic level';
      }
    } else if (c === 0) {
      return 'a topic filter must not contain U+0000';
    }
  }
  return undefined;
}

export interface SharedSubscription {
  /** The share name: `group` in `$share/group/filter`. */
  group: string;
  /** The filter the group subscribes to. */
  filter: string;
}

const SHARE_PREFIX = '$share/';

/**
 * Splits `$share/{group}/{filter}`. Returns undefined for an ordinary filter; throws MQTT_ERR_INVALID_TOPIC_FILTER
 * for a malformed shared one (empty or wildcard group, missing filter).
 */
export function parseSharedSubscription(filter: string): SharedSubscription | undefined {
  if (!filter.startsWith(SHARE_PREFIX)) return undefined;
  const slash = filter.indexOf('/', SHARE_PREFIX.length);
  const group = filter.slice(SHARE_PREFIX.length, slash === -1 ? undefined : slash);
  if (group.length === 0 || group.includes('+') || group.includes('#')) {
    throw invalidFilter(filter, 'the share name of $share/{name}/{filter} must be non-empty without + or #');
  }
  // The inner filter check below never sees the share name, and no MQTT string may carry U+0000.
  if (group.includes('\0')) throw invalidFilter(filter, 'a topic filter must not contain U+0000');
  if (slash === -1 || slash === filter.length - 1) {
    throw invalidFilter(filter, 'a shared subscription needs a topic filter after $share/{name}/');
  }
  const inner = filter.slice(slash + 1);
  const problem = topicFilterProblem(inner);
  if (problem !== undefined) throw invalidFilter(filter, problem);
  return { group, filter: inner };
}

function invalidFilter(filter: string, problem: string): MqttError {
  return new MqttError('MQTT_ERR_INVALID_TOPIC_FILTER', `${problem}: "${filter}"`, { reasonCode: 0x8f });
}

/** Throws MQTT_ERR_EMPTY_TOPIC_FILTER (0x81) or MQTT_ERR_INVALID_TOPIC_FILTER (0x8F). Accepts $share filters. */
export function validateTopicFilter(filter: string): void {
  if (typeof filter !== 'string') {
    throw new MqttError('MQTT_ERR_INVALID_TOPIC_FILTER', `a topic filter must be a string, got ${typeName(filter)}`, {
      reasonCode: 0x8f,
    });
  }
  if (filter.length === 0) {
    throw new MqttError('MQTT_ERR_EMPTY_TOPIC_FILTER', 'a topic filter must not be empty', { reasonCode: 0x81 });
  }
  if (parseSharedSubscription(filter) !== undefined) return;
  const problem = topicFilterProblem(filter);
  if (problem !== undefined) throw invalidFilter(filter, problem);
}

export function isValidTopicFilter(filter: string): boolean {
  try {
    validateTopicFilter(filter);
    return true;
  } catch {
    return false;
  }
}

/** What a value that should have been a string is, for an error message: `undefined`, `number 5`, `object`. */
export function typeName(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value} ${String(value)}`;
  return Array.isArray(value) ? 'array' : typeof value;
}
