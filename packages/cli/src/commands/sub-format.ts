// mosquitto_sub's `-F` output format for `otalink sub`: %-parameters of the message (with printf-like flags, width and
// precision where mosquitto takes them), @-time fields (strftime's letters), \-escapes. The format is checked when
// parsed, as mosquitto checks it; the output follows mosquitto_sub 2.0's byte for byte, quirks included, so scripts
// written against one read the other.
import type { Message, PublishProperties } from '@otalink/mqtt';
import { UsageError } from './usage.js';

export type FormattedMessage = Pick<Message, 'topic' | 'payload' | 'qos' | 'retain' | 'properties' | 'packetId'>;

/** What rendering one message gives: its bytes, and the %J complaint when the payload is not JSON. */
export interface Rendered {
  bytes: Buffer;
  error?: string;
}

/** Renders one message received at `ms` (Unix milliseconds). */
export type Formatter = (message: FormattedMessage, ms: number) => Rendered;

interface Param {
  conv: string;
  left: boolean;
  zero: boolean;
  width: number;
  precision: number | undefined;
}

type Piece = { text: Buffer } | { param: Param } | { time: string };

const PARAMS = '%ACDEFIlmPpqRSrtjJUxX';
const ESCAPES: Record<string, string> = {
  '\\': '\\',
  '0': '\0',
  a: '\x07',
  e: '\x1b',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
};
const PARAM_PATTERN = /%(-?)(0?)(\d*)(?:\.(\d*))?([\s\S]?)/y;

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];
const pad2 = (n: number) => String(n).padStart(2, '0');

/** strftime's fields in the C locale, on local time; N is mosquitto's own (nanoseconds within the second). */
const TIME_FIELDS: Record<string, (d: Date) => string> = {
  a: (d) => DAYS[d.getDay()]!.slice(0, 3),
  A: (d) => DAYS[d.getDay()]!,
  b: (d) => MONTHS[d.getMonth()]!.slice(0, 3),
  B: (d) => MONTHS[d.getMonth()]!,
  C: (d) => pad2(Math.floor(d.getFullYear() / 100)),
  d: (d) => pad2(d.getDate()),
  D: (d) => `${pad2(d.getMonth() + 1)}/${pad2(d.getDate())}/${pad2(d.getFullYear() % 100)}`,
  e: (d) => String(d.getDate()).padStart(2, ' '),
  F: (d) => `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`,
  h: (d) => MONTHS[d.getMonth()]!.slice(0, 3),
  H: (d) => pad2(d.getHours()),
  I: (d) => pad2(d.getHours() % 12 || 12),
  j: (d) => String(dayOfYear(d)).padStart(3, '0'),
  k: (d) => String(d.getHours()).padStart(2, ' '),
  l: (d) => String(d.getHours() % 12 || 12).padStart(2, ' '),
  m: (d) => pad2(d.getMonth() + 1),
  M: (d) => pad2(d.getMinutes()),
  n: () => '\n',
  N: (d) => String(d.getMilliseconds() * 1_000_000).padStart(9, '0'),
  p: (d) => (d.getHours() < 12 ? 'AM' : 'PM'),
  P: (d) => (d.getHours() < 12 ? 'am' : 'pm'),
  R: (d) => `${pad2(d.getHours())}:${pad2(d.getMinutes())}`,
  s: (d) => String(Math.floor(d.getTime() / 1000)),
  S: (d) => pad2(d.getSeconds()),
  t: () => '\t',
  T: (d) => `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`,
  u: (d) => String(d.getDay() || 7),
  w: (d) => String(d.getDay()),
  y: (d) => pad2(d.getFullYear() % 100),
  Y: (d) => String(d.getFullYear()),
  z: (d) => utcOffset(d),
  '%': () => '%',
};

function dayOfYear(d: Date): number {
  return (
    Math.round((Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()) - Date.UTC(d.getFullYear(), 0, 1)) / 86_400_000) +
    1
  );
}

/** strftime's %z: +hhmm. */
function utcOffset(d: Date): string {
  const minutes = -d.getTimezoneOffset();
  const abs = Math.abs(minutes);
  return `${minutes < 0 ? '-' : '+'}${pad2(Math.floor(abs / 60))}${pad2(abs % 60)}`;
}

/** Parses and checks a -F format; a mistake is a UsageError naming the sequence. */
export function compileFormat(format: string, pretty = false): Formatter {
  const pieces: Piece[] = [];
  let text = '';
  const bad = (why: string) => new UsageError(`-F "${format}": ${why}`);
  for (let i = 0; i < format.length; i++) {
    const c = format[i] as string;
    if (c === '%') {
      PARAM_PATTERN.lastIndex = i;
      const m = PARAM_PATTERN.exec(format) as RegExpExecArray;
      const conv = m[5] as string;
      if (conv === '') throw bad('incomplete format specifier at the end');
      if (!PARAMS.includes(conv)) throw bad(`invalid format specifier "${m[0]}"`);
      pieces.push({ text: Buffer.from(text) });
      text = '';
      pieces.push({
        param: {
          conv,
          left: m[1] === '-',
          zero: m[2] === '0',
          width: Number(m[3] || 0),
          precision: m[4] === undefined ? undefined : Number(m[4] || 0),
        },
      });
      i += m[0].length - 1;
    } else if (c === '@' || c === '\\') {
      const next = format[++i];
      if (next === undefined) throw bad(`incomplete ${c === '@' ? 'time field' : 'escape'} at the end`);
      if (c === '\\') {
        const escaped = ESCAPES[next];
        if (escaped === undefined) throw bad(`invalid escape "\\${next}"`);
        text += escaped;
      } else if (next === '@') {
        text += '@';
      } else {
        if (TIME_FIELDS[next] === undefined) {
          throw bad(`unsupported time field "@${next}" (supported: @${Object.keys(TIME_FIELDS).join(' @')})`);
        }
        pieces.push({ text: Buffer.from(text) });
        text = '';
        pieces.push({ time: next });
      }
    } else {
      text += c;
    }
  }
  pieces.push({ text: Buffer.from(text) });
  return (message, ms) => {
    const date = new Date(ms);
    const out: Buffer[] = [];
    let error: string | undefined;
    for (const piece of pieces) {
      if ('text' in piece) out.push(piece.text);
      else if ('time' in piece) out.push(Buffer.from((TIME_FIELDS[piece.time] as (d: Date) => string)(date)));
      else if (piece.param.conv === 'J') {
        const json = jsonMessage(message, date, false, pretty);
        if (json === undefined) error = `%J: the payload on topic "${message.topic}" is not valid JSON`;
        else out.push(Buffer.from(json));
      } else out.push(renderParam(piece.param, message, date, pretty));
    }
    return error === undefined ? { bytes: Buffer.concat(out) } : { bytes: Buffer.concat(out), error };
  };
}

function renderParam(p: Param, message: FormattedMessage, date: Date, pretty: boolean): Buffer {
  const props = message.properties;
  switch (p.conv) {
    case '%':
      return Buffer.from('%');
    case 'A':
      return Buffer.from(intField(props?.topicAlias, p));
    case 'C':
      return Buffer.from(props?.contentType === undefined ? ' '.repeat(p.width) : strField(props.contentType, p));
    case 'D':
      return Buffer.from(props?.correlationData ?? []);
    case 'E':
      return Buffer.from(intField(props?.messageExpiryInterval, p));
    case 'F':
      return Buffer.from(intField(props?.payloadFormatIndicator, p));
    case 'I':
      return Buffer.from(strField(isoTime(date), p));
    case 'j':
      return Buffer.from(jsonMessage(message, date, true, pretty) as string);
    case 'l':
      return Buffer.from(intField(message.payload.length, p));
    case 'm':
      // mosquitto prints 0 for QoS 0.
      return Buffer.from(intField(message.packetId ?? 0, p));
    case 'P':
      return Buffer.from((props?.userProperties ?? []).map(([k, v]) => `${k}:${v}`).join(' '));
    case 'p':
      return payloadField(message.payload, undefined, p);
    case 'q':
      return Buffer.from(String(message.qos));
    case 'R':
      return Buffer.from(props?.responseTopic === undefined ? '' : strField(props.responseTopic, p));
    case 'r':
      return Buffer.from(message.retain ? '1' : '0');
    case 'S':
      return Buffer.from(intField(props?.subscriptionIdentifiers?.[0], p));
    case 't':
      return Buffer.from(strField(message.topic, p));
    case 'U':
      return Buffer.from(`${Math.floor(date.getTime() / 1000)}.${TIME_FIELDS.N!(date)}`);
    default:
      return payloadField(message.payload, p.conv === 'X' ? 'upper' : 'lower', p);
  }
}

/** An integer with printf's width and flags; an absent one is `width` pad characters, as mosquitto prints it. */
function intField(value: number | undefined, p: Param): string {
  if (value === undefined) return (p.zero ? '0' : ' ').repeat(p.width);
  const s = String(value);
  if (p.left) return s.padEnd(p.width, ' ');
  return s.padStart(p.width, p.zero ? '0' : ' ');
}

function strField(value: string, p: Param): string {
  const s = p.precision === undefined ? value : value.slice(0, p.precision);
  return p.left ? s.padEnd(p.width, ' ') : s.padStart(p.width, ' ');
}

/**
 * The payload, raw or in hex, as mosquitto_sub 2.0 writes it: a width also caps how many bytes are shown, and in hex
 * it then shows half as many bytes (each takes two digits).
 */
function payloadField(payload: Uint8Array, hex: 'lower' | 'upper' | undefined, p: Param): Buffer {
  let length = payload.length;
  let padding = 0;
  if (p.width > 0) {
    length = Math.min(length, p.width);
    if (hex !== undefined) length = Math.floor(length / 2);
    padding = p.width - (hex === undefined ? length : length * 2);
  }
  const shown = payload.subarray(0, length);
  let body: Buffer = Buffer.from(shown.buffer, shown.byteOffset, shown.length);
  if (hex !== undefined) {
    const digits = body.toString('hex');
    body = Buffer.from(hex === 'upper' ? digits.toUpperCase() : digits);
  }
  if (padding <= 0) return body;
  if (p.left) return Buffer.concat([body, Buffer.from(' '.repeat(padding))]);
  return Buffer.concat([Buffer.from((p.zero ? '0' : ' ').repeat(padding)), body]);
}

/** %I: strftime's "%FT%T%z". */
function isoTime(d: Date): string {
  return `${TIME_FIELDS.F!(d)}T${TIME_FIELDS.T!(d)}${utcOffset(d)}`;
}

/** A JSON value with objects as ordered entries: cJSON keeps keys in order, repeats included. */
type Json = null | boolean | number | string | Json[] | { entries: Array<[string, Json]> };

const PROPERTY_NAMES: Record<keyof PublishProperties, string> = {
  payloadFormatIndicator: 'payload-format-indicator',
  messageExpiryInterval: 'message-expiry-interval',
  contentType: 'content-type',
  responseTopic: 'response-topic',
  correlationData: 'correlation-data',
  subscriptionIdentifiers: 'subscription-identifier',
  topicAlias: 'topic-alias',
  userProperties: 'user-properties',
};

const utf8 = new TextDecoder();

/**
 * %j (`escaped`: the payload as a string) and %J (the payload as the JSON it must be; undefined when it is not), as
 * mosquitto_sub 2.0 built with cJSON prints them. Its timestamp really reads "...:SS.uuuuuuZ+hhmm".
 */
function jsonMessage(message: FormattedMessage, date: Date, escaped: boolean, pretty: boolean): string | undefined {
  const micros = String(date.getMilliseconds() * 1000).padStart(6, '0');
  const entries: Array<[string, Json]> = [
    ['tst', `${TIME_FIELDS.F!(date)}T${TIME_FIELDS.T!(date)}.${micros}Z${utcOffset(date)}`],
    ['topic', message.topic],
    ['qos', message.qos],
    ['retain', message.retain ? 1 : 0],
    ['payloadlen', message.payload.length],
  ];
  // As mosquitto_sub: the packet identifier of a QoS 1/2 message.
  if (message.packetId !== undefined) entries.push(['mid', message.packetId]);
  const properties = propertyEntries(message.properties);
  if (properties.length > 0) entries.push(['properties', { entries: properties }]);
  let payload: Json = null;
  if (message.payload.length > 0) {
    const text = utf8.decode(message.payload);
    if (escaped) payload = text;
    else {
      try {
        payload = fromParsed(JSON.parse(text));
      } catch {
        return undefined;
      }
    }
  }
  entries.push(['payload', payload]);
  return printJson({ entries }, pretty, 0);
}

function propertyEntries(props: PublishProperties | undefined): Array<[string, Json]> {
  const out: Array<[string, Json]> = [];
  if (props === undefined) return out;
  for (const key of Object.keys(props) as Array<keyof PublishProperties>) {
    const value = props[key];
    if (value === undefined) continue;
    if (key === 'userProperties') out.push([PROPERTY_NAMES[key], { entries: props.userProperties ?? [] }]);
    else if (key === 'subscriptionIdentifiers') {
      for (const id of props.subscriptionIdentifiers ?? []) out.push([PROPERTY_NAMES[key], id]);
    } else if (value instanceof Uint8Array) out.push([PROPERTY_NAMES[key], utf8.decode(value)]);
    else out.push([PROPERTY_NAMES[key], value as number | string]);
  }
  return out;
}

function fromParsed(value: unknown): Json {
  if (Array.isArray(value)) return value.map(fromParsed);
  if (value !== null && typeof value === 'object') {
    return { entries: Object.entries(value).map(([k, v]): [string, Json] => [k, fromParsed(v)]) };
  }
  return value as Json;
}

/** cJSON's printer: compact, or (--pretty) tab-indented with ":\t" after keys and arrays kept on one line. */
function printJson(value: Json, pretty: boolean, depth: number): string {
  if (value === null) return 'null';
  if (typeof value === 'number') return cjsonNumber(value);
  if (typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((v) => printJson(v, pretty, depth + 1)).join(pretty ? ', ' : ',')}]`;
  if (!pretty)
    return `{${value.entries.map(([k, v]) => `${JSON.stringify(k)}:${printJson(v, false, depth + 1)}`).join(',')}}`;
  const inner = '\t'.repeat(depth + 1);
  const body = value.entries.map(([k, v]) => `${inner}${JSON.stringify(k)}:\t${printJson(v, true, depth + 1)}`);
  // An empty object still gets its line break: "{\n}".
  return `{\n${body.join(',\n')}${body.length > 0 ? '\n' : ''}${'\t'.repeat(depth)}}`;
}

/** cJSON prints an int as one, anything else as the shorter of C's %1.15g and %1.17g that reads back exactly. */
function cjsonNumber(n: number): string {
  if (!Number.isFinite(n)) return 'null';
  if (Number.isInteger(n) && n >= -2_147_483_648 && n <= 2_147_483_647) return String(n);
  const short = formatG(n, 15);
  return Number(short) === n ? short : formatG(n, 17);
}

/** C's %.<precision>g. */
function formatG(n: number, precision: number): string {
  const exponent = Number(n.toExponential(precision - 1).split('e')[1]);
  const trim = (s: string) => (s.includes('.') ? s.replace(/\.?0+$/, '') : s);
  if (exponent < -4 || exponent >= precision) {
    const mantissa = trim(n.toExponential(precision - 1).split('e')[0] as string);
    return `${mantissa}e${exponent < 0 ? '-' : '+'}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  return trim(n.toFixed(precision - 1 - exponent));
}
