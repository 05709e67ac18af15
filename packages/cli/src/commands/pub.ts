// `otalink pub`: publish like mosquitto_pub. The connection options (shared with `otalink sub`) live here too.
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { type ClientOptions, connect, type MqttClient, MqttError, type QoS } from '@otalink/mqtt';
import type { Command } from './command.js';
import { UsageError } from './usage.js';

export interface CliIo {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

const processIo: CliIo = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };

export const CONNECTION_USAGE = `Connection:
  -L <url>          mqtt://, mqtts://, ws://, wss:// URL (user:pass@host:port/path); -h/-p override it
  -h <host>         broker host (default localhost)
  -p <port>         broker port (default 1883, 8883 with TLS options)
  -i <id>           client id
  -u <user>         user name
  -P <password>     password
  -k <seconds>      keepalive (default 60)
  -c                persistent session (clean session off; needs -i)
  -V <5|311>        protocol version (default 311, as mosquitto)
  -q <0|1|2>        QoS (default 0)
  --cafile <file>   CA certificates for TLS
  --cert <file>     client certificate; --key <file> its key
  --insecure        do not verify the server certificate's host name
  --will-topic <t>  will message topic; --will-payload <p>, --will-qos <q>, --will-retain
  --help            this help`;

export const CONNECTION_OPTIONS = {
  L: { type: 'string', short: 'L' },
  host: { type: 'string', short: 'h' },
  port: { type: 'string', short: 'p' },
  id: { type: 'string', short: 'i' },
  username: { type: 'string', short: 'u' },
  pw: { type: 'string', short: 'P' },
  keepalive: { type: 'string', short: 'k' },
  'disable-clean-session': { type: 'boolean', short: 'c' },
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

function parseInteger(value: string, what: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max)
    throw new UsageError(`${what} must be ${min}..${max}, got "${value}"`);
  return n;
}

/** Builds client options from the shared connection flags. */
export async function clientOptions(values: Values): Promise<ClientOptions> {
  const options: ClientOptions = { reconnect: false, connectTimeoutMs: 10_000 };
  const url = str(values, 'L');
  const tlsWanted = values.cafile !== undefined || values.cert !== undefined || values.insecure === true;
  if (url !== undefined) options.url = url;
  else options.protocol = tlsWanted ? 'mqtts' : 'mqtt';
  const host = str(values, 'host');
  if (host !== undefined) options.host = host;
  const port = str(values, 'port');
  if (port !== undefined) options.port = parseInteger(port, '-p', 1, 65535);
  const id = str(values, 'id');
  if (id !== undefined) options.clientId = id;
  const username = str(values, 'username');
  if (username !== undefined) options.username = username;
  const password = str(values, 'pw');
  if (password !== undefined) options.password = password;
  const keepalive = str(values, 'keepalive');
  if (keepalive !== undefined) options.keepalive = parseInteger(keepalive, '-k', 0, 65535);
  if (values['disable-clean-session'] === true) {
    if (id === undefined) throw new UsageError('-c (persistent session) needs a client id (-i)');
    options.clean = false;
  }
  const version = str(values, 'protocol-version') ?? '311';
  if (version === '5' || version === 'mqttv5') options.protocolVersion = 5;
  else if (version === '311' || version === 'mqttv311') options.protocolVersion = 4;
  else throw new UsageError(`-V must be 5 or 311, got "${version}"`);
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
    if (values.insecure === true) options.tls.rejectUnauthorized = false;
  }
  const willTopic = str(values, 'will-topic');
  if (willTopic !== undefined) {
    options.will = {
      topic: willTopic,
      payload: str(values, 'will-payload') ?? '',
      qos: parseQos(str(values, 'will-qos'), '--will-qos'),
      retain: values['will-retain'] === true,
    };
  } else if (values['will-payload'] !== undefined) {
    throw new UsageError('--will-payload needs --will-topic');
  }
  return options;
}

/** Runs a command body with the shared error reporting: usage errors exit 1 with usage, refusals spelled out. */
export async function runCli(name: string, usage: string, io: CliIo, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr.write(`otalink ${name}: ${(err as Error).message}\n\n${usage}\n`);
      return 1;
    }
    if (err instanceof MqttError) {
      io.stderr.write(`otalink ${name}: ${err.message} [${err.code}]\n`);
      return err.code === 'MQTT_ERR_CONNECTION_REFUSED' ? 5 : 1;
    }
    // The client reports socket and TLS failures as MqttError too (MQTT_ERR_CONNECT_FAILED): this is for the rest.
    io.stderr.write(`otalink ${name}: ${(err as Error).message}\n`);
    return 1;
  }
}

const PUB_USAGE = `Usage: otalink pub -t <topic> (-m <message> | -f <file> | -n | -l | -s) [options]

Message:
  -t <topic>        topic to publish to
  -m <message>      message text
  -f <file>         send the file's contents as one message
  -n                send a zero-length message
  -l                send each line of stdin as a message
  -s                send all of stdin as one message
  -r                retain

${CONNECTION_USAGE}`;

export async function runPub(args: string[], io: CliIo = processIo): Promise<number> {
  return runCli('pub', PUB_USAGE, io, async () => {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        ...CONNECTION_OPTIONS,
        topic: { type: 'string', short: 't' },
        message: { type: 'string', short: 'm' },
        file: { type: 'string', short: 'f' },
        null: { type: 'boolean', short: 'n' },
        lines: { type: 'boolean', short: 'l' },
        stdin: { type: 'boolean', short: 's' },
        retain: { type: 'boolean', short: 'r' },
      },
    });
    if (values.help) {
      io.stdout.write(`${PUB_USAGE}\n`);
      return 0;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const topic = values.topic;
    if (topic === undefined) throw new UsageError('a topic is needed (-t)');
    const sources = ['message', 'file', 'null', 'lines', 'stdin'].filter((k) => values[k as keyof typeof values]);
    if (sources.length !== 1) throw new UsageError('give exactly one of -m, -f, -n, -l, -s');
    const qos = parseQos(values.qos);
    const retain = values.retain === true;
    const client: MqttClient = await connect(await clientOptions(values));
    try {
      if (values.lines) {
        const pending: Array<Promise<unknown>> = [];
        for await (const line of createInterface({ input: io.stdin, crlfDelay: Number.POSITIVE_INFINITY })) {
          pending.push(client.publish(topic, line, { qos, retain }));
        }
        await Promise.all(pending);
      } else {
        let payload: string | Uint8Array = '';
        if (values.message !== undefined) payload = values.message;
        else if (values.file !== undefined) payload = await readFile(values.file);
        else if (values.stdin) payload = await readAll(io.stdin);
        await client.publish(topic, payload, { qos, retain });
      }
    } finally {
      await client.end({ timeoutMs: 10_000 });
    }
    return 0;
  });
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks);
}

export const pub: Command = {
  run: (args) => runPub(args),
};
