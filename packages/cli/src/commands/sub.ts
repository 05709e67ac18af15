// `otalink sub`: subscribe and print like mosquitto_sub.
import { parseArgs } from 'node:util';
import { connect, type Message, type MqttClient } from '@otalink/mqtt';
import type { Command } from './command.js';
import { type CliIo, CONNECTION_OPTIONS, CONNECTION_USAGE, clientOptions, parseQos, runCli } from './pub.js';
import { UsageError } from './usage.js';

const SUB_USAGE = `Usage: otalink sub -t <filter> [-t <filter> ...] [options]

Output:
  -t <filter>       topic filter to subscribe to (repeatable)
  -v                print "topic payload" instead of the payload alone
  -C <count>        exit after receiving <count> messages
  -R                do not print retained messages (stale ones sent on subscribe)
  -N                do not add a newline after each message
  -W <seconds>      exit after this long even if -C was not reached

${CONNECTION_USAGE}`;

export interface SubIo extends CliIo {
  /** Stops the subscription (SIGINT in the CLI). */
  signal?: AbortSignal;
}

export async function runSub(args: string[], io: SubIo = defaultIo()): Promise<number> {
  return runCli('sub', SUB_USAGE, io, async () => {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        ...CONNECTION_OPTIONS,
        topic: { type: 'string', short: 't', multiple: true },
        verbose: { type: 'boolean', short: 'v' },
        count: { type: 'string', short: 'C' },
        'no-retained': { type: 'boolean', short: 'R' },
        'no-newline': { type: 'boolean', short: 'N' },
        timeout: { type: 'string', short: 'W' },
      },
    });
    if (values.help) {
      io.stdout.write(`${SUB_USAGE}\n`);
      return 0;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const filters = values.topic ?? [];
    if (filters.length === 0) throw new UsageError('at least one topic filter is needed (-t)');
    let count = Number.POSITIVE_INFINITY;
    if (values.count !== undefined) {
      count = Number(values.count);
      if (!/^\d+$/.test(values.count) || count < 1)
        throw new UsageError(`-C must be a positive count, got "${values.count}"`);
    }
    let timeoutMs: number | undefined;
    if (values.timeout !== undefined) {
      if (!/^\d+$/.test(values.timeout)) throw new UsageError(`-W must be seconds, got "${values.timeout}"`);
      timeoutMs = Number(values.timeout) * 1000;
    }
    const qos = parseQos(values.qos);
    // A subscriber keeps going through broker restarts, as mosquitto_sub does.
    const options = { ...(await clientOptions(values)), reconnect: {} };
    const client: MqttClient = await connect(options);
    const stream = client.messages();
    const stop = () => void stream.return();
    io.signal?.addEventListener('abort', stop, { once: true });
    const timer = timeoutMs === undefined ? undefined : setTimeout(stop, timeoutMs);
    let exitCode = 0;
    client.on('closed', (reason) => {
      if (reason !== undefined) {
        io.stderr.write(`otalink sub: ${reason.message}\n`);
        exitCode = 1;
      }
    });
    try {
      const sub = await client.subscribe(filters, { qos });
      const refused = sub.reasonCodes.findIndex((c) => c >= 0x80);
      if (refused >= 0) {
        io.stderr.write(
          `otalink sub: subscription to "${filters[refused]}" refused (0x${sub.reasonCodes[refused]!.toString(16)})\n`,
        );
        return 1;
      }
      let received = 0;
      const newline = values['no-newline'] ? '' : '\n';
      for await (const message of stream) {
        if (values['no-retained'] && message.retain) continue;
        io.stdout.write(format(message, values.verbose === true, newline));
        if (++received >= count) break;
      }
      if (timeoutMs !== undefined && received < count && count !== Number.POSITIVE_INFINITY) exitCode = 27;
    } finally {
      clearTimeout(timer);
      io.signal?.removeEventListener('abort', stop);
      await client.end({ timeoutMs: 5000 });
    }
    return exitCode;
  });
}

function format(message: Message, verbose: boolean, newline: string): Buffer {
  const payload = Buffer.from(message.payload.buffer, message.payload.byteOffset, message.payload.length);
  return verbose
    ? Buffer.concat([Buffer.from(`${message.topic} `), payload, Buffer.from(newline)])
    : Buffer.concat([payload, Buffer.from(newline)]);
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
