// `otalink passwd`: manage the broker's password file, as mosquitto_passwd does.
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { AuthFileError, hashPassword, parsePasswordFile, usernameProblem, writeFileAtomic } from '@otalink/broker';
import type { Command } from './command.js';

const USAGE = `Usage:
  otalink passwd [-c] <file> <user>             set a password, prompted for (twice on a terminal,
                                                one line from stdin otherwise)
  otalink passwd -b [-c] <file> <user> <pass>   set a password given on the command line (batch)
  otalink passwd -D <file> <user>               delete a user

  -c  create the file, replacing any that exists
  -h  this help

The file holds one user:$scrypt$N=16384,r=8,p=1$<salt>$<hash> line per user; point the broker's
password_file at it. It is rewritten atomically with mode 0600.
`;

// An MQTT password is binary data with a 16-bit length.
const MAX_PASSWORD_BYTES = 65_535;

export interface PasswdIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

interface PasswdRequest {
  mode: 'set' | 'delete';
  create: boolean;
  file: string;
  username: string;
  /** Given with -b; otherwise prompted for. */
  password: string | undefined;
}

function parseArguments(args: string[]): PasswdRequest | 'help' {
  const flags = new Set<string>();
  const positional: string[] = [];
  let onlyPositional = false;
  for (const arg of args) {
    if (!onlyPositional && arg === '--') onlyPositional = true;
    else if (!onlyPositional && /^-[a-zA-Z]+$/.test(arg)) for (const c of arg.slice(1)) flags.add(c);
    else if (!onlyPositional && arg === '--help') flags.add('h');
    else positional.push(arg);
  }
  if (flags.has('h')) return 'help';
  for (const flag of flags) {
    if (!'bcD'.includes(flag)) throw usage(`unknown option -${flag}`);
  }
  const batch = flags.has('b');
  const del = flags.has('D');
  const create = flags.has('c');
  if (del && (batch || create)) throw usage('-D cannot be combined with -b or -c');
  const expected = batch ? 3 : 2;
  if (positional.length !== expected) {
    throw usage(
      `expected ${batch ? '<file> <user> <password>' : '<file> <user>'}, got ${positional.length} argument(s)`,
    );
  }
  const [file, username, password] = positional as [string, string, string | undefined];
  return { mode: del ? 'delete' : 'set', create, file, username, password: batch ? password : undefined };
}

function usage(message: string): AuthFileError {
  return new AuthFileError('BROKER_ERR_PASSWD_USAGE', message);
}

/** Asks each of `prompts` on the terminal without echo: the terminal sees only the prompts. */
async function promptHidden(io: PasswdIo, prompts: string[]): Promise<string[]> {
  // Readline echoes what is typed to its output; this output swallows it.
  const silent = new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
  });
  const rl = createInterface({ input: io.stdin, output: silent, terminal: true });
  // Lines are queued, not taken with rl.question, so a line typed ahead of its prompt is not lost.
  const lines: string[] = [];
  let waiting: ((line: string | undefined) => void) | undefined;
  rl.on('line', (line) => {
    if (waiting === undefined) lines.push(line);
    else waiting(line);
  });
  let closed = false;
  rl.once('close', () => {
    closed = true;
    waiting?.(undefined);
  });
  const answers: string[] = [];
  try {
    for (const prompt of prompts) {
      io.stderr.write(prompt);
      const queued = lines.shift();
      const line =
        queued ??
        (closed
          ? undefined
          : await new Promise<string | undefined>((resolve) => {
              waiting = resolve;
            }));
      waiting = undefined;
      io.stderr.write('\n');
      if (line === undefined) throw new AuthFileError('BROKER_ERR_PASSWD_EMPTY', 'no password given');
      answers.push(line);
    }
    return answers;
  } finally {
    rl.close();
  }
}

/** Reads the first line of a non-terminal stdin (the rest is ignored). */
async function readLine(io: PasswdIo): Promise<string> {
  const rl = createInterface({ input: io.stdin, terminal: false, crlfDelay: Number.POSITIVE_INFINITY });
  try {
    for await (const line of rl) return line;
    return '';
  } finally {
    rl.close();
  }
}

async function obtainPassword(io: PasswdIo): Promise<string> {
  if (io.stdin.isTTY !== true) return readLine(io);
  const [first, second] = await promptHidden(io, ['Password: ', 'Reenter password: ']);
  if (first !== second) throw new AuthFileError('BROKER_ERR_PASSWD_MISMATCH', 'the two passwords do not match');
  return first;
}

function checkPassword(password: string): void {
  if (password.length === 0) throw new AuthFileError('BROKER_ERR_PASSWD_EMPTY', 'the password must not be empty');
  if (Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES) {
    throw new AuthFileError('BROKER_ERR_PASSWD_EMPTY', `the password must be at most ${MAX_PASSWORD_BYTES} bytes`);
  }
}

async function readExisting(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const hint = (error as NodeJS.ErrnoException).code === 'ENOENT' ? ' (use -c to create it)' : '';
    throw new AuthFileError(
      'BROKER_ERR_PASSWD_FILE',
      `cannot read the password file: ${(error as Error).message}${hint}`,
      {
        file,
        cause: error,
      },
    );
  }
}

/** Line index of `username` in the file's lines, or -1. */
function lineOf(lines: string[], username: string): number {
  return lines.findIndex((line) => line.trim().startsWith(`${username}:`));
}

export async function runPasswd(args: string[], io: PasswdIo): Promise<number> {
  let request: PasswdRequest | 'help';
  try {
    request = parseArguments(args);
  } catch (error) {
    io.stderr.write(`otalink passwd: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (request === 'help') {
    io.stdout.write(USAGE);
    return 0;
  }
  try {
    const problem = usernameProblem(request.username);
    if (problem !== undefined) throw new AuthFileError('BROKER_ERR_PASSWD_USERNAME', problem);
    // Validate the whole existing file first: never rewrite a file we could not read back.
    const text = request.create ? '' : await readExisting(request.file);
    const users = parsePasswordFile(text, request.file);
    // Edit lines in place so comments and order survive.
    const lines = text.split(/\r?\n/);
    if (lines[lines.length - 1] === '') lines.pop();
    const index = lineOf(lines, request.username);
    if (request.mode === 'delete') {
      if (!users.has(request.username) || index === -1) {
        throw new AuthFileError('BROKER_ERR_PASSWD_NO_SUCH_USER', `no user "${request.username}"`, {
          file: request.file,
        });
      }
      lines.splice(index, 1);
    } else {
      const password = request.password ?? (await obtainPassword(io));
      checkPassword(password);
      const line = `${request.username}:${await hashPassword(password)}`;
      if (index === -1) lines.push(line);
      else lines[index] = line;
    }
    await writeFileAtomic(request.file, lines.length === 0 ? '' : `${lines.join('\n')}\n`);
    return 0;
  } catch (error) {
    if (error instanceof AuthFileError) {
      io.stderr.write(`otalink passwd: ${error.message} [${error.code}]\n`);
      return 1;
    }
    io.stderr.write(`otalink passwd: ${request.file}: ${(error as Error).message} [BROKER_ERR_PASSWD_FILE]\n`);
    return 1;
  }
}

export const passwd: Command = {
  run: (args) => runPasswd(args, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr }),
};
