import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AuthFileError } from '../src/auth/errors.js';
import {
  createPasswordAuthenticator,
  formatPasswordFile,
  hashPassword,
  type PasswordHash,
  parsePasswordFile,
  parsePasswordHash,
  readPasswordFile,
  Turns,
  verifyPassword,
} from '../src/auth/password-file.js';
import type { AuthenticationRequest } from '../src/options.js';

// Unit tests use a cheap cost; the stored parameters make verification use the same.
const FAST = { N: 1024, r: 8, p: 1 };
const root = new URL('../../../', import.meta.url).pathname;
let dir = '';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'otalink-passwd-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function request(username: string | undefined, password: string | undefined): AuthenticationRequest {
  return {
    clientId: 'c1',
    username,
    password: password === undefined ? undefined : Buffer.from(password),
    certificateIdentity: undefined,
    protocolVersion: 5,
    remoteAddress: '127.0.0.1',
  };
}

function parsed(encoded: string): PasswordHash {
  const hash = parsePasswordHash(encoded);
  assert.ok(typeof hash !== 'string', String(hash));
  return hash;
}

describe('turns for password checks (libuv pool threads are shared with the store)', () => {
  test('at most `max` at once, the rest in line in order, one over the line refused; a turn passes straight on', async () => {
    const turns = new Turns(2, 2);
    assert.equal(turns.take(), true);
    assert.equal(turns.take(), true);
    const order: number[] = [];
    const third = (turns.take() as Promise<boolean>).then((ok) => order.push(3) && ok);
    const fourth = (turns.take() as Promise<boolean>).then((ok) => order.push(4) && ok);
    assert.equal(turns.take(), false, 'the line is full');
    assert.deepEqual([turns.running, turns.waiting], [2, 2]);
    turns.done();
    assert.equal(await third, true);
    assert.deepEqual([turns.running, turns.waiting], [2, 1], 'the turn went to the third, not back');
    turns.done();
    assert.equal(await fourth, true);
    assert.deepEqual(order, [3, 4]);
    for (let i = 0; i < 2; i++) turns.done();
    assert.deepEqual([turns.running, turns.waiting], [0, 0]);
  });
});

describe('password hashes', () => {
  test('hash, then verify the right and a wrong password; parameters are stored per line', async () => {
    const encoded = await hashPassword('correct horse', FAST);
    assert.match(encoded, /^\$scrypt\$N=1024,r=8,p=1\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*$/);
    const hash = parsed(encoded);
    assert.equal(await verifyPassword(hash, 'correct horse'), true);
    assert.equal(await verifyPassword(hash, 'correct horsE'), false);
    assert.equal(await verifyPassword(hash, ''), false);
    // Same password, fresh salt: different lines.
    assert.notEqual(await hashPassword('correct horse', FAST), encoded);
  });

  test('the default cost is N=16384,r=8,p=1', async () => {
    assert.match(await hashPassword('x'), /^\$scrypt\$N=16384,r=8,p=1\$/);
  });

  test('file text round trip and a file written by hand', async () => {
    const users = new Map([
      ['vin1', parsed(await hashPassword('a', FAST))],
      ['backend', parsed(await hashPassword('b', FAST))],
    ]);
    const text = formatPasswordFile(users);
    const back = parsePasswordFile(`# fleet users\n\n${text}`, 'users.passwd');
    assert.deepEqual([...back.keys()], ['vin1', 'backend']);
    assert.equal(await verifyPassword(back.get('backend') as PasswordHash, 'b'), true);
  });

  const badLines: [string, number, string][] = [
    ['vin1', 1, 'expected user:$scrypt$'],
    [':$scrypt$N=1024,r=8,p=1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==', 1, 'expected user:$scrypt$'],
    ['# ok\nvin1:plain', 2, 'user "vin1": expected $scrypt$'],
    ['vin1:$scrypt$N=1000,r=8,p=1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==', 1, 'power of two'],
    ['vin1:$scrypt$N=1048576,r=8,p=1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==', 1, 'MiB per hash'],
    ['vin1:$scrypt$N=1024,r=8,p=1$c2FsdA==$aGFzaGhhc2hoYXNoaGFzaA==', 1, 'salt'],
    [
      'vin1:$scrypt$N=1024,r=8,p=1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==\nvin1:$scrypt$N=1024,r=8,p=1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==',
      2,
      'appears twice',
    ],
  ];
  for (const [text, line, fragment] of badLines) {
    test(`bad password file line ${JSON.stringify(text.slice(0, 40))} → line ${line}`, () => {
      assert.throws(
        () => parsePasswordFile(text, 'users.passwd'),
        (error: unknown) => {
          assert.ok(error instanceof AuthFileError);
          assert.equal(error.code, 'BROKER_ERR_PASSWD_FORMAT');
          assert.equal(error.line, line);
          assert.ok(error.message.startsWith(`users.passwd:${line}: `), error.message);
          assert.ok(error.message.includes(fragment), error.message);
          return true;
        },
      );
    });
  }

  test('a missing password file is BROKER_ERR_PASSWD_FILE naming it', () => {
    assert.throws(
      () => readPasswordFile(join(dir, 'absent')),
      (error: unknown) => error instanceof AuthFileError && error.code === 'BROKER_ERR_PASSWD_FILE',
    );
  });
});

describe('password authenticator', () => {
  let users: Map<string, PasswordHash>;
  before(async () => {
    users = new Map([['vin1', parsed(await hashPassword('s3cret', FAST))]]);
  });

  test('right password → ok with the user name; wrong, unknown user, or missing password → 0x86', async () => {
    const authenticate = createPasswordAuthenticator(users);
    assert.deepEqual(await authenticate(request('vin1', 's3cret')), { ok: true, username: 'vin1' });
    // Again: served from the cache of recent successes, same answer.
    assert.deepEqual(await authenticate(request('vin1', 's3cret')), { ok: true, username: 'vin1' });
    assert.deepEqual(await authenticate(request('vin1', 'wrong')), { ok: false, reasonCode: 0x86 });
    assert.deepEqual(await authenticate(request('nobody', 's3cret')), { ok: false, reasonCode: 0x86 });
    assert.deepEqual(await authenticate(request('vin1', undefined)), { ok: false, reasonCode: 0x86 });
  });

  test('a flood of wrong passwords is answered, each 0x86, with the checks taking turns', async () => {
    const authenticate = createPasswordAuthenticator(users);
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => authenticate(request('vin1', `guess${i}`))));
    assert.deepEqual(
      new Set(answers.map((a) => JSON.stringify(a))),
      new Set([JSON.stringify({ ok: false, reasonCode: 0x86 })]),
    );
    assert.deepEqual(await authenticate(request('vin1', 's3cret')), { ok: true, username: 'vin1' });
  });

  test('anonymous clients: refused (0x87) unless allowAnonymous; a password without a user name is refused', async () => {
    assert.deepEqual(await createPasswordAuthenticator(users)(request(undefined, undefined)), {
      ok: false,
      reasonCode: 0x87,
    });
    const open = createPasswordAuthenticator(users, { allowAnonymous: true });
    assert.deepEqual(await open(request(undefined, undefined)), { ok: true });
    assert.deepEqual(await open(request(undefined, 'x')), { ok: false, reasonCode: 0x86 });
    // A user name must still be right when anonymous access is on.
    assert.deepEqual(await open(request('vin1', 'wrong')), { ok: false, reasonCode: 0x86 });
  });

  test('a certificate identity alone does not replace the password', async () => {
    const authenticate = createPasswordAuthenticator(users);
    const withCert = { ...request('vin1', 'wrong'), certificateIdentity: 'vin1' };
    assert.deepEqual(await authenticate(withCert), { ok: false, reasonCode: 0x86 });
  });

  test('the cache does not let a wrong password in after a right one, and can be turned off', async () => {
    for (const cacheSize of [0, 1]) {
      const authenticate = createPasswordAuthenticator(users, { cacheSize });
      assert.equal((await authenticate(request('vin1', 's3cret'))).ok, true);
      assert.equal((await authenticate(request('vin1', 's3cre'))).ok, false);
      assert.equal((await authenticate(request('vin1', 's3cret'))).ok, true);
    }
  });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function otalink(args: string[], input?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(root, 'bin/otalink.js'), ...args], {
      cwd: dir,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(guard);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input ?? '');
  });
}

describe('otalink passwd', () => {
  test('create, add, change, verify, delete: a round trip through the CLI', async () => {
    const file = join(dir, 'fleet.passwd');
    let run = await otalink(['passwd', '-c', '-b', file, 'vin1', 'first']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    run = await otalink(['passwd', '-b', file, 'backend', 'second']);
    assert.equal(run.code, 0, run.stderr);
    // Not a TTY: one line from stdin.
    run = await otalink(['passwd', file, 'vin2'], 'third\nignored\n');
    assert.equal(run.code, 0, run.stderr);

    let users = readPasswordFile(file);
    assert.deepEqual([...users.keys()], ['vin1', 'backend', 'vin2']);
    const authenticate = createPasswordAuthenticator(file);
    assert.equal((await authenticate(request('vin1', 'first'))).ok, true);
    assert.equal((await authenticate(request('backend', 'second'))).ok, true);
    assert.equal((await authenticate(request('vin2', 'third'))).ok, true);
    assert.equal((await authenticate(request('vin2', 'ignored'))).ok, false);

    // Changing a password keeps the line's place and the comments.
    writeFileSync(file, `# fleet\n${readFileSync(file, 'utf8')}`, { mode: 0o600 });
    run = await otalink(['passwd', '-b', file, 'vin1', 'changed']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(readFileSync(file, 'utf8'), /^# fleet\nvin1:/);
    users = readPasswordFile(file);
    assert.equal(await verifyPassword(users.get('vin1') as PasswordHash, 'changed'), true);

    run = await otalink(['passwd', '-D', file, 'backend']);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual([...readPasswordFile(file).keys()], ['vin1', 'vin2']);
    assert.equal(statSync(file).mode & 0o777, 0o600);
  });

  test('clear errors with codes and exit status', async () => {
    const file = join(dir, 'errors.passwd');
    let run = await otalink(['passwd', '-b', file, 'vin1', 'pw']);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /use -c to create it.*BROKER_ERR_PASSWD_FILE/);

    run = await otalink(['passwd', '-c', '-b', file, 'a:b', 'pw']);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /must not contain ":".*BROKER_ERR_PASSWD_USERNAME/);
    // Names the file would read back as another user (trimmed) or as none (a comment).
    for (const [name, problem] of [
      [' vin4', /white space/],
      ['vin4 ', /white space/],
      ['#vin3', /must not start with "#"/],
    ] as const) {
      run = await otalink(['passwd', '-c', '-b', file, name, 'pw']);
      assert.equal(run.code, 1, name);
      assert.match(run.stderr, problem);
      assert.match(run.stderr, /BROKER_ERR_PASSWD_USERNAME/);
    }

    run = await otalink(['passwd', '-c', file, 'vin1'], '');
    assert.equal(run.code, 1);
    assert.match(run.stderr, /BROKER_ERR_PASSWD_EMPTY/);

    run = await otalink(['passwd', '-c', '-b', file, 'vin1', 'pw']);
    assert.equal(run.code, 0, run.stderr);
    run = await otalink(['passwd', '-D', file, 'ghost']);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /no user "ghost".*BROKER_ERR_PASSWD_NO_SUCH_USER/);

    run = await otalink(['passwd', '-x', file, 'vin1']);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /unknown option -x/);
    run = await otalink(['passwd', '-b', file, 'vin1']);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /expected <file> <user> <password>/);

    // A corrupt file is never rewritten.
    writeFileSync(file, 'vin1:garbage\n');
    run = await otalink(['passwd', '-b', file, 'vin2', 'pw']);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /errors\.passwd:1: .*BROKER_ERR_PASSWD_FORMAT/);
    assert.equal(readFileSync(file, 'utf8'), 'vin1:garbage\n');

    run = await otalink(['passwd', '--help']);
    assert.equal(run.code, 0);
    assert.match(run.stdout, /otalink passwd -D <file> <user>/);
  });
});
