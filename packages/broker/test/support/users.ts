// Two users with passwords, for the tests of who may do what (22 auth update, 23 identity boundaries): an
// authenticate hook over them, and the CONNECT fields that log in as one.
import type { Authenticate } from '../../src/index.js';
import { str, text } from './raw-client.js';

export const passwords = new Map([
  ['alice', 'pw-a'],
  ['bob', 'pw-b'],
]);

export const authenticate: Authenticate = (request) =>
  request.username !== undefined && passwords.get(request.username) === str(request.password ?? new Uint8Array())
    ? { ok: true, username: request.username }
    : { ok: false, reasonCode: 0x86 };

export const login = (user: string, version: 4 | 5, clientId = `${user}-${version}`) => ({
  version,
  clientId,
  username: user,
  password: text(passwords.get(user)!),
});
