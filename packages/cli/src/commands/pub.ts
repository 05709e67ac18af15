// `otalink pub`: publish like mosquitto_pub. The connection options (shared with `otalink sub`) live here too.
import { readFile } from 'node:fs/promises';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { type ClientOptions, connect, type MqttClient, MqttError, type QoS, reasonName } from '@otalink/mqtt';
import type { Command } from './command.js';
import { type CliProperties, parsePropertyArgs, preparseArgs } from './mqtt-properties.js';
import { tracingTransport } from './packet-trace.js';
import { UsageError } from './usage.js';

export interface CliIo {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

const processIo: CliIo = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };

export const CONNECTION_USAGE = `Connection:
  -L <url>          mqtt://user:pass@host:port/topic, mqtts://...; -h/-p override it. The path is the
                    topic, as in mosquitto; ws:// and wss:// URLs (not in mosquitto) keep theirs as the
                    WebSocket path
  -h <host>         broker host (default localhost)
  -p <port>         broker port (default 1883, 8883 with TLS options)
  -i <id>           client id
  -I <prefix>       client id: <prefix> followed by the process id
  -u <user>         user name
  -P <password>     password
  -k <seconds>      keepalive (default 60)
  -c                persistent session (clean session off; needs -i)
  -x <seconds>      MQTT 5 session expiry interval: 0..4294967294, or -1, 4294967295 or ∞ for never
  -V <5|311>        protocol version (default 311 as mosquitto, 5 when -D is given)
  -q <0|1|2>        QoS (default 0)
  -D <command> <property> <value>
                    MQTT 5 property (long form --property), repeatable: user-property takes a key and
                    a value. Commands and properties: connect session-expiry-interval, receive-maximum,
                    maximum-packet-size, topic-alias-maximum, request-problem-information,
                    request-response-information, user-property; will content-type, correlation-data,
                    message-expiry-interval, payload-format-indicator, response-topic,
                    will-delay-interval, user-property; disconnect session-expiry-interval,
                    user-property
  --cafile <file>   CA certificates for TLS
  --cert <file>     client certificate; --key <file> its key
  --insecure        do not check the server certificate's host name (its chain is still verified)
  --will-topic <t>  will message topic; --will-payload <p>, --will-qos <q>, --will-retain
  -d                print each MQTT packet sent and received on stderr (mqtt:// and mqtts:// only)
  --quiet           print no error messages, except about the command line (exit codes unchanged)
  --nodelay         accepted for mosquitto's sake: the client always sets TCP_NODELAY
  --help            this help`;

export const CONNECTION_OPTIONS = {
  L: { type: 'string', short: 'L' },
  host: { type: 'string', short: 'h' },
  port: { type: 'string', short: 'p' },
  id: { type: 'string', short: 'i' },
  'id-prefix': { type: 'string', short: 'I' },
  username: { type: 'string', short: 'u' },
  pw: { type: 'string', short: 'P' },
  keepalive: { type: 'string', short: 'k' },
  'disable-clean-session': { type: 'boolean', short: 'c' },
  // `-x <value>` reaches parseArgs as --session-expiry=<value> (preparseArgs).
  'session-expiry': { type: 'string' },
  'protocol-version': { type: 'string', short: 'V' },
  qos: { type: 'string', short: 'q' },
  cafile: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  insecure: { type: 'boolean' },
  'will-topic': { type: 'string' },
  'will-payload': { type: 'string' },
  'will-qos': { type: 'string' },
  'will-retain': { type: 'boolean' },
  debug: { type: 'boolean', short: 'd' },
  quiet: { type: 'boolean' },
  nodelay: { type: 'boolean' },
  help: { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

type Values = Record<string, string | boolean | string[] | undefined>;

function str(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

export function parseQos(value: string | undefined, what = '-q'): QoS {
  if (value === undefined) return 0;
  if (value !== '0' && value !== '1' && value !== '2')
    throw new UsageError(`${what} must be 0, 1 or 2, got "${value}"`);
  return Number(value) as QoS;
}

/** A count of 1 or more (sub -C, pub --repeat). */
export function parseCount(value: string, what: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1) throw new UsageError(`${what} must be a positive count, got "${value}"`);
  return n;
}

function parseInteger(value: string, what: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max)
    throw new UsageError(`${what} must be ${min}..${max}, got "${value}"`);
  return n;
}

/**
 * mosquitto's -L: the path of an mqtt:// or mqtts:// URL is a topic, taken as typed (a `#` in it is no fragment), and
 * the client gets the URL without it. A ws:// or wss:// URL is the client's as it is: its path is the WebSocket path.
 */
export function splitUrl(url: string): { server: string; topic: string | undefined } {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/]*)(?:\/([\s\S]*))?$/i.exec(url);
  if (m === null || /^wss?:/i.test(url)) return { server: url, topic: undefined };
  return { server: `${m[1]}${m[2]}`, topic: m[3] || undefined };
}

/** -x: seconds, or never (-1, 4294967295, ∞). */
function parseSessionExpiry(text: string): number {
  if (text === '-1' || text === '∞') return 0xffffffff;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 0xffffffff) {
    throw new UsageError(`-x must be 0..4294967294 seconds, or -1, 4294967295 or ∞ for never, got "${text}"`);
  }
  return n;
}

/** Builds client options from the shared connection flags and the `-D` properties; `io` takes -d's trace. */
export async function clientOptions(
  values: Values,
  properties: CliProperties = {},
  io?: CliIo,
): Promise<ClientOptions> {
  // No store, as mosquitto_pub and mosquitto_sub keep none: a command line run leaves no files behind.
  const options: ClientOptions = { reconnect: false, connectTimeoutMs: 10_000, store: false };
  const url = str(values, 'L');
  const tlsWanted = values.cafile !== undefined || values.cert !== undefined || values.insecure === true;
  if (url !== undefined) options.url = splitUrl(url).server;
  else options.protocol = tlsWanted ? 'mqtts' : 'mqtt';
  const host = str(values, 'host');
  if (host !== undefined) options.host = host;
  const port = str(values, 'port');
  if (port !== undefined) options.port = parseInteger(port, '-p', 1, 65535);
  const id = str(values, 'id');
  const prefix = str(values, 'id-prefix');
  if (id !== undefined && prefix !== undefined) throw new UsageError('-i and -I cannot be used together');
  // As mosquitto: an empty -i (an unset variable, say) is a mistake; leaving -i out gets a generated id.
  if (id === '') throw new UsageError('-i: the client id is empty (leave -i out for a generated one)');
  if (id !== undefined) options.clientId = id;
  if (prefix !== undefined) options.clientId = `${prefix}${process.pid}`;
  const username = str(values, 'username');
  if (username !== undefined) options.username = username;
  const password = str(values, 'pw');
  if (password !== undefined) options.password = password;
  const keepalive = str(values, 'keepalive');
  // 5..65535 as mosquitto's clients take it: 0 (no keepalive) would leave a dead line unnoticed for ever.
  if (keepalive !== undefined) options.keepalive = parseInteger(keepalive, '-k', 5, 65535);
  if (values['disable-clean-session'] === true) {
    if (id === undefined) throw new UsageError('-c (persistent session) needs a client id (-i)');
    options.clean = false;
  }
  // As mosquitto: -D makes the client MQTT 5 unless -V says otherwise.
  const version = str(values, 'protocol-version') ?? (properties.first === undefined ? '311' : '5');
  if (version === '5' || version === 'mqttv5') options.protocolVersion = 5;
  else if (version === '311' || version === 'mqttv311') options.protocolVersion = 4;
  else throw new UsageError(`-V must be 5 or 311, got "${version}"`);
  if (options.protocolVersion === 4 && properties.first !== undefined) {
    throw new UsageError(`${properties.first}: MQTT 5 properties need -V 5, not -V ${version}`);
  }
  let connectProperties = properties.connect;
  const expiry = str(values, 'session-expiry');
  if (expiry !== undefined) {
    if (options.protocolVersion !== 5) throw new UsageError(`-x ${expiry}: the session expiry needs MQTT 5 (-V 5)`);
    if (connectProperties?.sessionExpiryInterval !== undefined) {
      throw new UsageError('-x and -D connect session-expiry-interval both set the session expiry: give one');
    }
    const seconds = parseSessionExpiry(expiry);
    // A session nobody can resume by name: mosquitto refuses it too.
    if (seconds === 0xffffffff && id === undefined) {
      throw new UsageError(`-x ${expiry}: a session that never expires needs a client id (-i)`);
    }
    connectProperties = { ...connectProperties, sessionExpiryInterval: seconds };
  }
  if (connectProperties !== undefined) options.properties = connectProperties;
  // MQTT 5 forbids keeping at DISCONNECT a session that CONNECT said ends with the connection: refused before
  // connecting (the client refuses it at the end, after the messages went out).
  const disconnectExpiry = properties.disconnect?.sessionExpiryInterval;
  if (disconnectExpiry !== undefined && disconnectExpiry > 0 && options.clean !== false) {
    if ((connectProperties?.sessionExpiryInterval ?? 0) === 0) {
      throw new UsageError(
        `-D disconnect session-expiry-interval ${disconnectExpiry}: the session must not end with the connection (-c, -x or -D connect session-expiry-interval)`,
      );
    }
  }
  if (tlsWanted) {
    const cafile = str(values, 'cafile');
    const cert = str(values, 'cert');
    const key = str(values, 'key');
    if ((cert === undefined) !== (key === undefined)) throw new UsageError('--cert and --key go together');
    options.tls = {
      ca: cafile === undefined ? undefined : await readFile(cafile),
      cert: cert === undefined ? undefined : await readFile(cert),
      key: key === undefined ? undefined : await readFile(key),
    };
    // mosquitto's --insecure skips the host name check only: the chain is still verified.
    if (values.insecure === true) options.tls.checkHostname = false;
  }
  const willTopic = str(values, 'will-topic');
  if (willTopic !== undefined) {
    options.will = {
      topic: willTopic,
      payload: str(values, 'will-payload') ?? '',
      qos: parseQos(str(values, 'will-qos'), '--will-qos'),
      retain: values['will-retain'] === true,
    };
    if (properties.will !== undefined) options.will.properties = properties.will;
  } else if (values['will-payload'] !== undefined) {
    throw new UsageError('--will-payload needs --will-topic');
  } else if (values['will-retain'] === true) {
    throw new UsageError('--will-retain needs --will-topic');
  } else if (properties.will !== undefined) {
    throw new UsageError('-D will: will properties need a will (--will-topic)');
  }
  if (values.debug === true) {
    if (url !== undefined && /^wss?:/i.test(url)) {
      throw new UsageError(`-d traces mqtt:// and mqtts:// connections, not ${url.split(':')[0]}://`);
    }
    const stderr = (io ?? processIo).stderr;
    options.transport = tracingTransport(options.protocolVersion, (line) => stderr.write(`${line}\n`));
  }
  return options;
}

/** What a command line decided that error reporting needs: --quiet. */
export interface CliRun {
  quiet: boolean;
}

/**
 * Runs a command body with the shared error reporting: usage errors exit 1 with usage, refusals spelled out. With
 * --quiet (the body sets `run.quiet`) only usage errors are printed, as mosquitto does.
 */
export async function runCli(
  name: string,
  usage: string,
  io: CliIo,
  body: (run: CliRun) => Promise<number>,
): Promise<number> {
  const run: CliRun = { quiet: false };
  try {
    return await body(run);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr.write(`otalink ${name}: ${(err as Error).message}\n\n${usage}\n`);
      return 1;
    }
    if (err instanceof MqttError) {
      let message = err.message;
      // The client names only the code of a refused message: its reason spelled out, as for a refused connection.
      if (err.code === 'MQTT_ERR_PUBLISH_FAILED' && err.reasonCode !== undefined) {
        message = message.replace(/reason 0x[0-9a-f]+$/i, reasonName(err.reasonCode));
      }
      if (!run.quiet) io.stderr.write(`otalink ${name}: ${message} [${err.code}]\n`);
      return refusalExitCode(err) ?? 1;
    }
    // The client reports socket and TLS failures as MqttError too (MQTT_ERR_CONNECT_FAILED): this is for the rest.
    if (!run.quiet) io.stderr.write(`otalink ${name}: ${(err as Error).message}\n`);
    return 1;
  }
}

/**
 * A connection the server refused exits with the CONNACK's code, as mosquitto_pub and mosquitto_sub do: 1..5 in MQTT
 * 3.1.1, 0x80.. (e.g. 135 for Not authorized) in MQTT 5.
 */
export function refusalExitCode(err: MqttError): number | undefined {
  if (err.code !== 'MQTT_ERR_CONNECTION_REFUSED') return undefined;
  const code = err.reasonCode;
  return code !== undefined && code > 0 && code < 256 ? code : 5;
}

const PUB_USAGE = `Usage: otalink pub {-t <topic> | -L <url>} (-m <message> | -f <file> | -n | -l | -s) [options]

Message:
  -t <topic>        topic to publish to
  -m <message>      message text
  -f <file>         send the file's contents as one message
  -n                send a zero-length message
  -l                send each line of stdin as a message
  -s                send all of stdin as one message
  -r                retain
  --repeat <N>      with -m, -f, -n or -s: publish the message N times
  --repeat-delay <seconds>
                    wait this long between those publishes (fractions allowed; default 0)
  -M <count>        at most this many QoS 1/2 messages unacknowledged at once
  -D publish <property> <value>
                    content-type, correlation-data, message-expiry-interval, payload-format-indicator,
                    response-topic, topic-alias, user-property <key> <value>

${CONNECTION_USAGE}`;

const PUB_OPTIONS = {
  ...CONNECTION_OPTIONS,
  topic: { type: 'string', short: 't' },
  message: { type: 'string', short: 'm' },
  file: { type: 'string', short: 'f' },
  null: { type: 'boolean', short: 'n' },
  lines: { type: 'boolean', short: 'l' },
  stdin: { type: 'boolean', short: 's' },
  retain: { type: 'boolean', short: 'r' },
  repeat: { type: 'string' },
  'repeat-delay': { type: 'string' },
  'max-inflight': { type: 'string', short: 'M' },
} as const satisfies ParseArgsConfig['options'];

const MESSAGE_SOURCES = new Set(['message', 'file', 'null', 'lines', 'stdin']);

export async function runPub(args: string[], io: CliIo = processIo): Promise<number> {
  return runCli('pub', PUB_USAGE, io, async (run) => {
    const { rest, groups } = preparseArgs(args, PUB_OPTIONS);
    const { values, positionals, tokens } = parseArgs({
      args: rest,
      allowPositionals: true,
      tokens: true,
      options: PUB_OPTIONS,
    });
    run.quiet = values.quiet === true;
    if (values.help) {
      io.stdout.write(`${PUB_USAGE}\n`);
      return 0;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const properties = parsePropertyArgs(groups, 'pub');
    const urlTopic = values.L === undefined ? undefined : splitUrl(values.L).topic;
    if (urlTopic !== undefined && values.topic !== undefined) {
      throw new UsageError(`-t "${values.topic}" and the topic "${urlTopic}" in -L's URL: give one`);
    }
    const topic = values.topic ?? urlTopic;
    if (topic === undefined) throw new UsageError("a topic is needed (-t, or a path in -L's URL)");
    // Counted as given, not as parsed: two -m would keep the last one only. -m "" is a message too (a zero-length
    // one, as in mosquitto_pub).
    const sources = tokens.filter((t) => t.kind === 'option' && MESSAGE_SOURCES.has(t.name));
    if (sources.length !== 1) throw new UsageError('give exactly one of -m, -f, -n, -l, -s');
    const repeat = values.repeat === undefined ? 1 : parseCount(values.repeat, '--repeat');
    let delayMs = 0;
    const delay = values['repeat-delay'];
    if (delay !== undefined) {
      if (!/^(\d+\.?\d*|\.\d+)$/.test(delay)) throw new UsageError(`--repeat-delay must be seconds, got "${delay}"`);
      delayMs = Number(delay) * 1000;
    }
    if (values.lines && (values.repeat !== undefined || delay !== undefined)) {
      throw new UsageError('--repeat and --repeat-delay go with -m, -f, -n or -s, not -l');
    }
    const publishOptions = {
      qos: parseQos(values.qos),
      retain: values.retain === true,
      properties: properties.publish,
    };
    const options = await clientOptions(values, properties, io);
    if (values['max-inflight'] !== undefined)
      options.maxInflight = parseInteger(values['max-inflight'], '-M', 1, 65535);
    // As mosquitto_pub: the file is read before connecting, so a missing one costs no connection.
    let payload: string | Uint8Array = values.message ?? '';
    if (values.file !== undefined) {
      try {
        payload = await readFile(values.file);
      } catch (err) {
        throw new Error(`-f ${values.file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? err})`);
      }
    }
    if (values.stdin) {
      payload = await readAll(io.stdin);
      // As mosquitto_pub: an empty stdin (a failed command before the pipe) is an error, not an empty message, which
      // with -r would clear the retained one. Read before connecting, as -f is.
      if (payload.length === 0)
        throw new Error('-s: zero length input on stdin; nothing published (-n sends an empty message)');
    }
    const client: MqttClient = await connect(options);
    try {
      if (values.lines) {
        const pending: Array<Promise<unknown>> = [];
        for await (const line of stdinLines(io.stdin)) pending.push(client.publish(topic, line, publishOptions));
        await Promise.all(pending);
      } else {
        for (let i = 0; i < repeat; i++) {
          if (i > 0 && delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
          await client.publish(topic, payload, publishOptions);
        }
      }
    } finally {
      await endClient(client, properties.disconnect);
    }
    return 0;
  });
}

/** Ends the connection; if the client refuses the clean end, the connection is dropped: the process must exit. */
export async function endClient(client: MqttClient, properties: CliProperties['disconnect']): Promise<void> {
  try {
    await client.end({ timeoutMs: 10_000, properties });
  } catch (err) {
    await client.end({ force: true });
    throw err;
  }
}

/**
 * -l: stdin's lines as mosquitto_pub reads them: split at \n only, the \n dropped and everything else kept as bytes
 * (a \r, invalid UTF-8). An empty line is a zero-length message; a last line without \n is a message too.
 */
export async function* stdinLines(stream: NodeJS.ReadableStream): AsyncGenerator<Buffer> {
  let pending = Buffer.alloc(0);
  for await (const chunk of stream) {
    pending = Buffer.concat([pending, typeof chunk === 'string' ? Buffer.from(chunk) : chunk]);
    let start = 0;
    for (let nl = pending.indexOf(10); nl >= 0; nl = pending.indexOf(10, start)) {
      yield pending.subarray(start, nl);
      start = nl + 1;
    }
    pending = pending.subarray(start);
  }
  if (pending.length > 0) yield pending;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks);
}

export const pub: Command = {
  run: (args) => runPub(args),
};
