import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createAclAuthorizer, filterCovers, filtersOverlap, parseAcl, readAclFile } from '../src/auth/acl.js';
import { AuthFileError } from '../src/auth/errors.js';
import type { ClientIdentity } from '../src/options.js';

function client(username: string | undefined, clientId = 'client-1'): ClientIdentity {
  return { clientId, username, protocolVersion: 5, remoteAddress: '127.0.0.1' };
}

const fleet = `
# The OTA fleet: vehicles under their own VIN, the backend everywhere under ota/.
topic read $SYS/broker/uptime

user backend
topic readwrite ota/#

user auditor
topic read ota/#
topic deny ota/+/secrets/#

pattern readwrite ota/%u/#
pattern write clients/%c/status
`;

type Row = [rules: string, who: ClientIdentity, action: 'publish' | 'subscribe', topic: string, allowed: boolean];

const rows: Row[] = [
  // A vehicle under its own VIN.
  [fleet, client('VIN1'), 'publish', 'ota/VIN1/status', true],
  [fleet, client('VIN1'), 'publish', 'ota/VIN1', true],
  [fleet, client('VIN1'), 'subscribe', 'ota/VIN1/command', true],
  [fleet, client('VIN1'), 'subscribe', 'ota/VIN1/#', true],
  [fleet, client('VIN1'), 'subscribe', 'ota/VIN1/+/progress', true],
  [fleet, client('VIN1'), 'subscribe', 'ota/VIN1', true],
  // ...and nowhere else.
  [fleet, client('VIN1'), 'publish', 'ota/VIN2/status', false],
  [fleet, client('VIN1'), 'subscribe', 'ota/+/command', false],
  [fleet, client('VIN1'), 'subscribe', 'ota/#', false],
  [fleet, client('VIN1'), 'subscribe', '#', false],
  [fleet, client('VIN1'), 'subscribe', '+/VIN1/command', false],
  [fleet, client('VIN1'), 'publish', 'ota', false],
  [fleet, client('VIN1'), 'publish', 'ota/VIN10/status', false],
  // A deny pattern wins over the allow pattern, also for a subscription that could receive the denied topic.
  [`${fleet}\npattern deny ota/%u/locked`, client('VIN1'), 'publish', 'ota/VIN1/locked', false],
  [`${fleet}\npattern deny ota/%u/locked`, client('VIN1'), 'publish', 'ota/VIN1/status', true],
  [`${fleet}\npattern deny ota/%u/locked`, client('VIN1'), 'subscribe', 'ota/VIN1/#', false],
  [`${fleet}\npattern deny ota/%u/locked`, client('VIN1'), 'subscribe', 'ota/VIN1/+/x', true],
  // %c with the client id; a write-only pattern gives no read.
  [fleet, client('VIN1', 'tcu-7'), 'publish', 'clients/tcu-7/status', true],
  [fleet, client('VIN1', 'tcu-7'), 'subscribe', 'clients/tcu-7/status', false],
  [fleet, client('VIN1', 'tcu-7'), 'publish', 'clients/tcu-8/status', false],
  // Injection: a user or client id with wildcards or slashes must not widen a pattern.
  [fleet, client('+'), 'publish', 'ota/+/status', false],
  [fleet, client('+'), 'subscribe', 'ota/+/command', false],
  [fleet, client('+'), 'publish', 'ota/VIN1/status', false],
  [fleet, client('#'), 'subscribe', 'ota/#', false],
  [fleet, client('#'), 'publish', 'ota/x', false],
  [fleet, client('VIN1/../VIN2'), 'publish', 'ota/VIN1/../VIN2/status', false],
  [fleet, client('a/b'), 'publish', 'ota/a/b/status', false],
  [fleet, client(''), 'publish', 'ota//status', false],
  [fleet, client('VIN1', 'x/+'), 'publish', 'clients/x/+/status', false],
  [fleet, client('VIN1', '#'), 'publish', 'clients/#/status', false],
  // Anonymous: only the rules before the first user line; %u patterns never apply.
  [fleet, client(undefined), 'subscribe', '$SYS/broker/uptime', true],
  [fleet, client(undefined), 'publish', '$SYS/broker/uptime', false],
  [fleet, client(undefined), 'publish', 'ota/undefined/status', false],
  [fleet, client(undefined, 'anon-1'), 'publish', 'clients/anon-1/status', true],
  // The backend may do anything under ota/ but not $SYS (rules before `user` are anonymous only).
  [fleet, client('backend'), 'subscribe', 'ota/#', true],
  [fleet, client('backend'), 'subscribe', 'ota/+/status', true],
  [fleet, client('backend'), 'publish', 'ota/VIN1/command', true],
  [fleet, client('backend'), 'subscribe', '#', false],
  [fleet, client('backend'), 'subscribe', '$SYS/broker/uptime', false],
  // Deny against subscriptions: any overlap refuses.
  [fleet, client('auditor'), 'subscribe', 'ota/VIN1/status', true],
  [fleet, client('auditor'), 'subscribe', 'ota/VIN1/secrets/key', false],
  [fleet, client('auditor'), 'subscribe', 'ota/#', false],
  [fleet, client('auditor'), 'subscribe', 'ota/+/+/key', false],
  [fleet, client('auditor'), 'publish', 'ota/VIN1/status', false],
  // A deny pattern whose %u cannot be substituted fails closed: it denies for every value.
  ['pattern readwrite #\npattern deny ota/%u/locked', client('a/b'), 'publish', 'ota/x/locked', false],
  ['pattern readwrite #\npattern deny ota/%u/locked', client('a/b'), 'publish', 'ota/x/open', true],
  ['pattern readwrite #\npattern deny ota/%u/locked', client(undefined), 'publish', 'ota/x/locked', false],
  // $-topics are not covered by leading wildcards.
  ['topic read #', client(undefined), 'subscribe', '$SYS/#', false],
  ['topic read #', client(undefined), 'subscribe', 'a/b', true],
  ['topic read +/#', client(undefined), 'subscribe', '$SYS/broker/uptime', false],
  ['topic read $SYS/#', client(undefined), 'subscribe', '$SYS/broker/+', true],
  // Default access is readwrite; no rules means nothing.
  ['topic a/b', client(undefined), 'publish', 'a/b', true],
  ['topic a/b', client(undefined), 'subscribe', 'a/b', true],
  ['', client('anyone'), 'publish', 'a', false],
  ['', client(undefined), 'subscribe', 'a', false],
  // Exact rule vs wildcard subscriptions.
  ['topic read a/+/c', client(undefined), 'subscribe', 'a/b/c', true],
  ['topic read a/+/c', client(undefined), 'subscribe', 'a/+/c', true],
  ['topic read a/+/c', client(undefined), 'subscribe', 'a/#', false],
  ['topic read a/+/c', client(undefined), 'subscribe', 'a/b/c/d', false],
  // A user section repeated later is merged.
  ['user u\ntopic a\nuser v\ntopic b\nuser u\ntopic c', client('u'), 'publish', 'c', true],
  ['user u\ntopic a\nuser v\ntopic b\nuser u\ntopic c', client('u'), 'publish', 'b', false],
];

describe('ACL authorizer', () => {
  for (const [rules, who, action, topic, allowed] of rows) {
    const label = `${JSON.stringify(
      rules
        .split('\n')
        .filter((l) => l.trim() !== '' && !l.startsWith('#'))
        .slice(0, 3),
    )}`;
    test(`${who.username ?? '(anonymous)'}/${who.clientId} ${action} ${topic} → ${allowed ? 'allowed' : 'refused'} (${label.slice(0, 60)})`, () => {
      const authorize = createAclAuthorizer(parseAcl(rules, 'test.acl'));
      assert.equal(authorize(who, action, topic), allowed);
      // A second call takes the per-identity cache and must agree.
      assert.equal(authorize(who, action, topic), allowed);
    });
  }

  test('the per-identity cache follows a changed user name', () => {
    const authorize = createAclAuthorizer(parseAcl('pattern ota/%u/#'));
    const who = client('VIN1');
    assert.equal(authorize(who, 'publish', 'ota/VIN1/x'), true);
    who.username = 'VIN2';
    assert.equal(authorize(who, 'publish', 'ota/VIN1/x'), false);
    assert.equal(authorize(who, 'publish', 'ota/VIN2/x'), true);
  });
});

describe('filter coverage and overlap', () => {
  const covers: [string, string, boolean][] = [
    ['#', 'a', true],
    ['#', '#', true],
    ['a/#', 'a', true],
    ['a/#', 'a/#', true],
    ['a/#', 'a/+', true],
    ['a/+', 'a/#', false],
    ['a/+', 'a/+', true],
    ['a/+', 'a', false],
    ['+', '+/#', false],
    ['+/+', '+/b', true],
    ['a/b', 'a/+', false],
    ['a//c', 'a/+/c', false],
    ['a/+/c', 'a//c', true],
    ['#', '$SYS/x', false],
    ['$SYS/#', '$SYS/x', true],
  ];
  for (const [rule, filter, expected] of covers) {
    test(`${rule} ${expected ? 'covers' : 'does not cover'} ${filter}`, () => {
      assert.equal(filterCovers(rule, filter), expected);
    });
  }
  const overlaps: [string, string, boolean][] = [
    ['a/#', 'a', true],
    ['a', 'a/#', true],
    ['a/+', 'a', false],
    ['a/+/c', '+/b/#', true],
    ['a/b', 'a/c', false],
    ['#', '$SYS/x', false],
    ['+/x', '$SYS/x', false],
    ['$SYS/#', '$SYS/x', true],
    ['a/b/c', 'a/b', false],
  ];
  for (const [a, b, expected] of overlaps) {
    test(`${a} ${expected ? 'overlaps' : 'does not overlap'} ${b}`, () => {
      assert.equal(filtersOverlap(a, b), expected);
      assert.equal(filtersOverlap(b, a), expected);
    });
  }
});

describe('ACL parse errors name file and line', () => {
  const bad: [text: string, line: number, fragment: string][] = [
    ['topic a\nfrobnicate a', 2, 'unknown keyword "frobnicate"'],
    ['\n\nuser', 3, 'expected a user name'],
    ['topic', 1, 'expected [read|write|readwrite|deny]'],
    ['topic read a/b#', 1, '# must occupy a whole topic level'],
    ['pattern write a+/b', 1, '+ must occupy a whole topic level'],
    ['topic read a/#/b', 1, '# must be the last character'],
    ['topic read ota/%u/#', 1, 'substituted only in pattern lines'],
    ['topic read $share/g/a', 1, '$share'],
  ];
  for (const [text, line, fragment] of bad) {
    test(`${JSON.stringify(text)} → line ${line}`, () => {
      assert.throws(
        () => parseAcl(text, 'fleet.acl'),
        (error: unknown) => {
          assert.ok(error instanceof AuthFileError);
          assert.equal(error.code, 'BROKER_ERR_ACL');
          assert.equal(error.file, 'fleet.acl');
          assert.equal(error.line, line);
          assert.ok(error.message.startsWith(`fleet.acl:${line}: `), error.message);
          assert.ok(error.message.includes(fragment), error.message);
          return true;
        },
      );
    });
  }

  test('a missing file is BROKER_ERR_ACL naming the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'otalink-acl-'));
    try {
      const path = join(dir, 'missing.acl');
      assert.throws(
        () => readAclFile(path),
        (error: unknown) => {
          assert.ok(error instanceof AuthFileError);
          assert.equal(error.code, 'BROKER_ERR_ACL');
          assert.ok(error.message.startsWith(`${path}: cannot read`), error.message);
          return true;
        },
      );
      writeFileSync(path, 'user u\ntopic read a/#\n');
      assert.deepEqual(readAclFile(path).users.get('u'), [{ access: 'read', filter: 'a/#', line: 2 }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
