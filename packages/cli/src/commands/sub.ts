// `otalink sub`: subscribe and print like mosquitto_sub.
import { type ParseArgsConfig, parseArgs } from 'node:util';
import {
  connect,
  type Message,
  type MqttClient,
  MqttError,
  reasonName,
  topicFilterProblem,
  topicMatches,
} from '@otalink/mqtt';
import type { Command } from './command.js';
import { parsePropertyArgs, preparseArgs } from './mqtt-properties.js';
import {
  type CliIo,
  CONNECTION_OPTIONS,
  CONNECTION_USAGE,
  clientOptions,
  endClient,
  parseCount,
  parseQos,
  refusalExitCode,
  runCli,
  splitUrl,
} from './pub.js';
import { compileFormat, type Rendered } from './sub-format.js';
import { UsageError } from './usage.js';

const SUB_USAGE = `Usage: otalink sub {-t <filter> [-t <filter> ...] | -L <url> | -U <filter>} [options]

Subscription:
  -t <filter>       topic filter to subscribe to (repeatable)
  -U <filter>       unsubscribe from it after subscribing (repeatable), e.g. to clean up a persistent
                    session (-c); with no -t, unsubscribe and exit
  -E                exit once every subscription was acknowledged, printing nothing
  -D subscribe <property> <value>
                    subscription-identifier (1..268435455), user-property <key> <value>; and
                    -D unsubscribe user-property <key> <value>

Output:
  -v                print "topic payload" instead of the payload alone
  -F <format>       print each message in this format (overrides -v), as mosquitto_sub's -F: %t topic,
                    %p payload, %x / %X payload in hex, %l payload length, %q QoS, %r retain flag,
                    %m message id (0 for QoS 0), %I ISO 8601 time, %U Unix time, %j / %J JSON (payload
                    as a string / as JSON), %C %D %E %F %P %R %S %A MQTT 5 properties, %% a %; printf
                    flags and widths (%-10t, %05l, %.3t); @Y @m @d @H @M @S @N ... strftime's time fields;
                    \\n \\t \\r \\v \\a \\e \\0 \\\\ escapes
  --pretty          indent %j and %J output
  -N                do not add a newline after each message
  -C <count>        exit after printing <count> messages
  -R                do not print retained messages (stale ones sent on subscribe), nor clear them
  --retained-only   print only retained messages; exit at the first message that is not
  --remove-retained clear every retained message received (publish an empty retained one to its topic);
                    -T spares a topic, -W or --retained-only end the run
  -T <filter>       do not print (nor clear) messages whose topic matches this filter (repeatable)
  -W <seconds>      give up after this long (1 or more; exit code 27), even if -C was not reached

${CONNECTION_USAGE}`;

export interface SubIo extends CliIo {
  /** Stops the subscription (SIGINT in the CLI). */
  signal?: AbortSignal;
}

const SUB_OPTIONS = {
  ...CONNECTION_OPTIONS,
  topic: { type: 'string', short: 't', multiple: true },
  unsubscribe: { type: 'string', short: 'U', multiple: true },
  'filter-out': { type: 'string', short: 'T', multiple: true },
  'exit-after-subscribe': { type: 'boolean', short: 'E' },
  verbose: { type: 'boolean', short: 'v' },
  format: { type: 'string', short: 'F' },
  pretty: { type: 'boolean' },
  count: { type: 'string', short: 'C' },
  'no-retained': { type: 'boolean', short: 'R' },
  'retained-only': { type: 'boolean' },
  'remove-retained': { type: 'boolean' },
  'no-newline': { type: 'boolean', short: 'N' },
  timeout: { type: 'string', short: 'W' },
} as const satisfies ParseArgsConfig['options'];

export async function runSub(args: string[], io: SubIo = defaultIo()): Promise<number> {
  return runCli('sub', SUB_USAGE, io, async (run) => {
    const { rest, groups } = preparseArgs(args, SUB_OPTIONS);
    const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: SUB_OPTIONS });
    run.quiet = values.quiet === true;
    const warn = (text: string) => {
      if (!run.quiet) io.stderr.write(`otalink sub: ${text}\n`);
    };
    if (values.help) {
      io.stdout.write(`${SUB_USAGE}\n`);
      return 0;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const properties = parsePropertyArgs(groups, 'sub');
    const urlTopic = values.L === undefined ? undefined : splitUrl(values.L).topic;
    const filters = [...(urlTopic === undefined ? [] : [urlTopic]), ...(values.topic ?? [])];
    const unsubscribe = values.unsubscribe ?? [];
    const filterOut = values['filter-out'] ?? [];
    for (const [flag, list] of [
      ['-T', filterOut],
      ['-U', unsubscribe],
    ] as const) {
      for (const filter of list) {
        const problem = topicFilterProblem(filter);
        if (problem !== undefined) throw new UsageError(`${flag} "${filter}" is not a topic filter: ${problem}`);
      }
    }
    if (filters.length === 0 && unsubscribe.length === 0) {
      throw new UsageError("a topic filter is needed (-t, a path in -L's URL, or -U to unsubscribe)");
    }
    if (values['no-retained'] && values['retained-only']) {
      throw new UsageError('-R and --retained-only: printing no retained messages and only retained ones contradict');
    }
    const count = values.count === undefined ? Number.POSITIVE_INFINITY : parseCount(values.count, '-C');
    let timeoutMs: number | undefined;
    if (values.timeout !== undefined) {
      // mosquitto_sub refuses 0 too.
      if (!/^\d+$/.test(values.timeout) || Number(values.timeout) < 1) {
        throw new UsageError(`-W must be 1 or more seconds, got "${values.timeout}"`);
      }
      timeoutMs = Number(values.timeout) * 1000;
    }
    const formatter = values.format === undefined ? undefined : compileFormat(values.format, values.pretty === true);
    const render = (message: Message): Rendered =>
      formatter === undefined ? { bytes: plain(message, values.verbose === true) } : formatter(message, Date.now());
    const qos = parseQos(values.qos);
    // A subscriber keeps going through broker restarts, as mosquitto_sub does, and ends, as it does, when a
    // reconnect is refused for good (credentials, rights, client id): retrying that once a minute would hide it.
    const options = {
      ...(await clientOptions(values, properties, io)),
      reconnect: { onPermanentRefusal: 'end' as const },
      // A message is acknowledged once printed (or skipped by -R/-T): those behind -C's last, or behind the end of
      // -W or --retained-only, stay unacknowledged, and a persistent session (-c) gets them again next time, as
      // mosquitto_sub's do. Acknowledged on arrival, they were lost.
      manualAck: true,
    };
    const client: MqttClient = await connect(options);
    const stream = client.messages();
    const stop = () => void stream.return();
    io.signal?.addEventListener('abort', stop, { once: true });
    let timedOut = false;
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            stop();
          }, timeoutMs);
    let exitCode = 0;
    client.on('closed', (reason) => {
      if (reason !== undefined) {
        warn(reason.message);
        exitCode = (reason instanceof MqttError ? refusalExitCode(reason) : undefined) ?? 1;
      }
    });
    // --remove-retained's publishes: awaited before the end, so a refusal is reported and none is cut short.
    const removals: Array<Promise<unknown>> = [];
    try {
      if (filters.length > 0) {
        const sub = await client.subscribe(filters, { qos, properties: properties.subscribe });
        const refused = sub.reasonCodes.findIndex((c) => c >= 0x80);
        if (refused >= 0) {
          warn(`subscription to "${filters[refused]}" refused (${reasonName(sub.reasonCodes[refused]!)})`);
          return 1;
        }
      }
      if (unsubscribe.length > 0) {
        const codes = await client.unsubscribe(unsubscribe, properties.unsubscribe);
        const refused = codes.findIndex((c) => c >= 0x80);
        if (refused >= 0) {
          warn(`unsubscribing from "${unsubscribe[refused]}" refused (${reasonName(codes[refused]!)})`);
          return 1;
        }
      }
      if (values['exit-after-subscribe'] || filters.length === 0) return exitCode;
      let received = 0;
      const newline = values['no-newline'] ? '' : '\n';
      for await (const message of stream) {
        if (values['retained-only'] && !message.retain) break;
        // As mosquitto_sub: what -R or -T skips is neither printed nor cleared by --remove-retained.
        if (
          (values['no-retained'] && message.retain) ||
          filterOut.some((filter) => topicMatches(filter, message.topic))
        ) {
          message.ack();
          continue;
        }
        if (values['remove-retained'] && message.retain) {
          const removal = client.publish(message.topic, '', { qos: 1, retain: true });
          removal.catch(() => {});
          removals.push(removal);
        }
        // mosquitto_sub prints nothing at all, not even the newline, for an empty payload without -v or -F, nor
        // with -v and -N (its "topic (null)" comes only with the newline).
        const printed =
          formatter !== undefined || message.payload.length > 0 || (values.verbose === true && newline !== '');
        if (printed) {
          const { bytes, error } = render(message);
          if (error !== undefined) warn(error);
          io.stdout.write(Buffer.concat([bytes, Buffer.from(newline)]));
        }
        message.ack();
        if (++received >= count) break;
      }
      await Promise.all(removals);
      // As mosquitto_sub: -W running out is exit code 27, with or without -C.
      if (timedOut) {
        warn('Timed out');
        exitCode = 27;
      }
    } finally {
      clearTimeout(timer);
      io.signal?.removeEventListener('abort', stop);
      await endClient(client, properties.disconnect);
    }
    return exitCode;
  });
}

/** The payload, or with -v "topic payload" ("topic (null)" for an empty one, as mosquitto_sub prints it). */
function plain(message: Message, verbose: boolean): Buffer {
  const payload = Buffer.from(message.payload.buffer, message.payload.byteOffset, message.payload.length);
  if (!verbose) return payload;
  return payload.length === 0
    ? Buffer.from(`${message.topic} (null)`)
    : Buffer.concat([Buffer.from(`${message.topic} `), payload]);
}

function defaultIo(): SubIo {
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  process.once('SIGTERM', () => controller.abort());
  return { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, signal: controller.signal };
}

export const sub: Command = {
  run: (args) => runSub(args),
};
