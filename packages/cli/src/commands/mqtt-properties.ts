// mosquitto's `-D <command> <property> <value>` (long form `--property`) for `otalink pub` and `otalink sub`: MQTT 5
// properties by packet, mapped to the client's property objects. parseArgs has no options with several values, so
// the groups are taken out of argv before it runs.
import type {
  ConnectProperties,
  DisconnectProperties,
  Properties,
  PublishProperties,
  SubscribeProperties,
  UnsubscribeProperties,
  WillProperties,
} from '@otalink/mqtt';
import { UsageError } from './usage.js';

/** The packets `-D` can give properties to. */
export type PropertyCommand = 'connect' | 'publish' | 'subscribe' | 'unsubscribe' | 'disconnect' | 'will';

/** What each command sends: pub no SUBSCRIBE, sub no PUBLISH of its own (--remove-retained's carry none). */
const COMMANDS: Record<'pub' | 'sub', readonly PropertyCommand[]> = {
  pub: ['connect', 'publish', 'disconnect', 'will'],
  sub: ['connect', 'subscribe', 'unsubscribe', 'disconnect', 'will'],
};

export interface CliProperties {
  connect?: ConnectProperties;
  publish?: PublishProperties;
  subscribe?: SubscribeProperties;
  unsubscribe?: UnsubscribeProperties;
  disconnect?: DisconnectProperties;
  will?: WillProperties;
  /** The first `-D` group as typed, for the error when the protocol version cannot carry any of them. */
  first?: string;
}

type Kind = 'flag' | 'u16' | 'u32' | 'nonzero-u16' | 'nonzero-u32' | 'subscription-id' | 'string' | 'binary' | 'pair';

/** Integer ranges; the nonzero ones are those MQTT 5 calls a protocol error when 0. */
const RANGES: Partial<Record<Kind, readonly [number, number]>> = {
  flag: [0, 1],
  u16: [0, 0xffff],
  'nonzero-u16': [1, 0xffff],
  u32: [0, 0xffffffff],
  'nonzero-u32': [1, 0xffffffff],
  'subscription-id': [1, 268_435_455],
};

interface PropertyDef {
  field: keyof Properties;
  kind: Kind;
  commands: readonly PropertyCommand[];
}

const PUBLISH_WILL = ['publish', 'will'] as const;

/** mosquitto's property names, with the commands MQTT 5 allows each in. */
const DEFS: Record<string, PropertyDef> = {
  'payload-format-indicator': { field: 'payloadFormatIndicator', kind: 'flag', commands: PUBLISH_WILL },
  'message-expiry-interval': { field: 'messageExpiryInterval', kind: 'u32', commands: PUBLISH_WILL },
  'content-type': { field: 'contentType', kind: 'string', commands: PUBLISH_WILL },
  'response-topic': { field: 'responseTopic', kind: 'string', commands: PUBLISH_WILL },
  'correlation-data': { field: 'correlationData', kind: 'binary', commands: PUBLISH_WILL },
  'subscription-identifier': { field: 'subscriptionIdentifiers', kind: 'subscription-id', commands: ['subscribe'] },
  'session-expiry-interval': { field: 'sessionExpiryInterval', kind: 'u32', commands: ['connect', 'disconnect'] },
  'request-problem-information': { field: 'requestProblemInformation', kind: 'flag', commands: ['connect'] },
  'will-delay-interval': { field: 'willDelayInterval', kind: 'u32', commands: ['will'] },
  'request-response-information': { field: 'requestResponseInformation', kind: 'flag', commands: ['connect'] },
  'receive-maximum': { field: 'receiveMaximum', kind: 'nonzero-u16', commands: ['connect'] },
  'topic-alias-maximum': { field: 'topicAliasMaximum', kind: 'u16', commands: ['connect'] },
  'topic-alias': { field: 'topicAlias', kind: 'nonzero-u16', commands: ['publish'] },
  'maximum-packet-size': { field: 'maximumPacketSize', kind: 'nonzero-u32', commands: ['connect'] },
  'user-property': {
    field: 'userProperties',
    kind: 'pair',
    commands: ['connect', 'publish', 'subscribe', 'unsubscribe', 'disconnect', 'will'],
  },
};

const encoder = new TextEncoder();

/** What preparseArgs needs of a parseArgs option table: which options take a value, and their short letters. */
type OptionTable = Record<string, { type: 'string' | 'boolean'; short?: string }>;

/**
 * Splits argv into the `-D` / `--property` groups (in order, each with its flag first) and the rest for parseArgs.
 * An option that takes a value, given as its own word (`-m`, `--message`), takes the next word whatever it starts
 * with, as mosquitto's clients do: it reaches parseArgs as `--message=<word>`, since parseArgs refuses `-m -42` and
 * `-P -secret` as ambiguous. `-x <value>` becomes `--session-expiry=<value>` (-1 is never).
 */
export function preparseArgs(
  args: readonly string[],
  options: OptionTable = {},
): { rest: string[]; groups: string[][] } {
  const takesValue = new Map<string, string>([['-x', 'session-expiry']]);
  for (const [name, option] of Object.entries(options)) {
    if (option.type !== 'string') continue;
    takesValue.set(`--${name}`, name);
    if (option.short !== undefined) takesValue.set(`-${option.short}`, name);
  }
  const rest: string[] = [];
  const groups: string[][] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--') {
      rest.push(...args.slice(i));
      break;
    }
    const long = takesValue.get(arg);
    if (long !== undefined && i + 1 < args.length) {
      rest.push(`--${long}=${args[++i]}`);
      continue;
    }
    if (arg !== '-D' && arg !== '--property') {
      rest.push(arg);
      continue;
    }
    const name = args[i + 2];
    if (name === undefined) {
      throw new UsageError(
        `${args.slice(i).join(' ')}: needs a command, a property and a value (${arg} publish content-type text/plain)`,
      );
    }
    const size = name.toLowerCase() === 'user-property' ? 5 : 4;
    const group = args.slice(i, i + size);
    if (group.length < size) {
      throw new UsageError(`${group.join(' ')}: needs ${size === 5 ? 'a key and a value' : 'a value'}`);
    }
    groups.push(group);
    i += size - 1;
  }
  return { rest, groups };
}

/** The properties the groups give, by packet, for `otalink <tool>`; every mistake is a UsageError naming its group. */
export function parsePropertyArgs(groups: readonly string[][], tool: 'pub' | 'sub'): CliProperties {
  const out: CliProperties = {};
  const byCommand: Partial<Record<PropertyCommand, Properties>> = {};
  for (const group of groups) {
    const [flag, commandText, nameText, ...values] = group as [string, string, string, ...string[]];
    const command = commandText.toLowerCase();
    const name = nameText.toLowerCase();
    const what = `${flag} ${commandText} ${nameText}`;
    const allowed = COMMANDS[tool];
    if (!allowed.includes(command as PropertyCommand)) {
      throw new UsageError(`${flag} ${commandText}: unknown command for otalink ${tool} (${allowed.join(', ')})`);
    }
    if (name === 'authentication-method' || name === 'authentication-data') {
      throw new UsageError(`${what}: not supported (no enhanced authentication from the command line)`);
    }
    const def = DEFS[name];
    if (def === undefined) throw new UsageError(`${what}: unknown property`);
    if (!def.commands.includes(command as PropertyCommand)) {
      throw new UsageError(`${what}: not allowed for ${command} (only for ${def.commands.join(', ')})`);
    }
    byCommand[command as PropertyCommand] ??= {};
    const props = byCommand[command as PropertyCommand] as Properties;
    const value = values[0] as string;
    if (def.kind === 'pair') {
      props.userProperties ??= [];
      props.userProperties.push([value, values[1] as string]);
    } else {
      if (props[def.field] !== undefined) throw new UsageError(`${what}: given twice`);
      Object.assign(props, { [def.field]: propertyValue(def.kind, value, what) });
    }
    out.first ??= group.join(' ');
  }
  return Object.assign(out, byCommand);
}

function propertyValue(kind: Kind, text: string, what: string): string | Uint8Array | number | number[] {
  if (kind === 'string') return text;
  if (kind === 'binary') return encoder.encode(text);
  const [min, max] = RANGES[kind] as readonly [number, number];
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) throw new UsageError(`${what} must be ${min}..${max}, got "${text}"`);
  // SUBSCRIBE carries one identifier; the client's field is a list because a PUBLISH may carry several.
  return kind === 'subscription-id' ? [n] : n;
}
