// Access control lists in Mosquitto's acl_file format:
//
//   topic read $SYS/#            rules before the first `user` line apply to anonymous clients
//   user backend
//   topic readwrite ota/#        rules after `user <name>` apply to that user
//   pattern readwrite ota/%u/#   patterns apply to every client, with %u (user) and %c (client id) substituted
//
// Access is `read`, `write`, `readwrite` (the default) or `deny`. A deny rule wins over any allow rule. Anything not
// allowed is refused.
import { readFileSync } from 'node:fs';
import { topicFilterProblem, topicMatches } from '@otalink/mqtt/topic';
import type { Authorize, ClientIdentity } from '../options.js';
import { AuthFileError } from './errors.js';

export type AclAccess = 'read' | 'write' | 'readwrite' | 'deny';

export interface AclRule {
  access: AclAccess;
  /** A topic filter; for patterns it may hold %u and %c. */
  filter: string;
  /** Where the rule came from, for logs. */
  line?: number;
}

export interface AclRules {
  /** `topic` rules before the first `user` line: clients without a user name. */
  anonymous: AclRule[];
  /** `topic` rules per user name (or certificate identity). */
  users: Map<string, AclRule[]>;
  /** `pattern` rules: every client. */
  patterns: AclRule[];
}

const ACCESS_WORDS = new Set<string>(['read', 'write', 'readwrite', 'deny']);

/** Parses ACL file text; errors (BROKER_ERR_ACL) name `file` and the line. */
export function parseAcl(text: string, file = '<acl>'): AclRules {
  const rules: AclRules = { anonymous: [], users: new Map(), patterns: [] };
  let current: AclRule[] = rules.anonymous;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNumber = i + 1;
    const line = (lines[i] as string).trim();
    if (line === '' || line.startsWith('#')) continue;
    const fail = (message: string) => new AuthFileError('BROKER_ERR_ACL', message, { file, line: lineNumber });
    const space = line.search(/\s/);
    const keyword = space === -1 ? line : line.slice(0, space);
    const rest = space === -1 ? '' : line.slice(space).trim();
    if (keyword === 'user') {
      if (rest === '') throw fail('user: expected a user name');
      let section = rules.users.get(rest);
      if (section === undefined) {
        section = [];
        rules.users.set(rest, section);
      }
      current = section;
      continue;
    }
    if (keyword !== 'topic' && keyword !== 'pattern') {
      throw fail(`unknown keyword "${keyword}" (expected user, topic or pattern)`);
    }
    const { access, filter } = splitAccess(rest);
    if (filter === '') throw fail(`${keyword}: expected [read|write|readwrite|deny] <topic filter>`);
    const problem = topicFilterProblem(filter);
    if (problem !== undefined) throw fail(`${keyword}: ${problem}: "${filter}"`);
    if (filter.startsWith('$share/')) {
      throw fail(`${keyword}: rules apply to the filter inside $share/<group>/, write that filter instead`);
    }
    if (keyword === 'topic' && /%[uc]/.test(filter)) {
      throw fail('topic: %u and %c are substituted only in pattern lines');
    }
    const rule: AclRule = { access, filter, line: lineNumber };
    if (keyword === 'pattern') rules.patterns.push(rule);
    else current.push(rule);
  }
  return rules;
}

function splitAccess(rest: string): { access: AclAccess; filter: string } {
  const space = rest.search(/\s/);
  if (space !== -1) {
    const word = rest.slice(0, space);
    if (ACCESS_WORDS.has(word)) return { access: word as AclAccess, filter: rest.slice(space).trim() };
  }
  return { access: 'readwrite', filter: rest };
}

export function readAclFile(file: string): AclRules {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new AuthFileError('BROKER_ERR_ACL', `cannot read the ACL file: ${(error as Error).message}`, {
      file,
      cause: error,
    });
  }
  return parseAcl(text, file);
}

/**
 * Whether every topic that matches `filter` also matches `rule` (both valid filters). Used for subscriptions: a
 * client may subscribe to `ota/VIN1/#` under the rule `ota/VIN1/#`, but not to `ota/+/command` or `#`.
 */
export function filterCovers(rule: string, filter: string): boolean {
  const r = rule.split('/');
  const f = filter.split('/');
  // A leading wildcard in the rule does not match $-topics, so it cannot cover a filter for them (MQTT 4.7.2).
  const fFirst = f[0] as string;
  const rFirst = r[0] as string;
  if (fFirst.startsWith('$') && (rFirst === '+' || rFirst === '#')) return false;
  for (let i = 0; ; i++) {
    if (i === r.length) return i === f.length;
    const rl = r[i] as string;
    if (rl === '#') return true;
    // The rule has more levels than the filter (a `#` here was handled above).
    if (i === f.length) return false;
    const fl = f[i] as string;
    // `#` in the filter matches any depth: only a `#` in the rule at this level covers it.
    if (fl === '#') return false;
    if (rl === '+') continue;
    if (fl === '+' || fl !== rl) return false;
  }
}

/** Whether some topic matches both filters. Used for deny rules against subscriptions. */
export function filtersOverlap(a: string, b: string): boolean {
  const x = a.split('/');
  const y = b.split('/');
  const xFirst = x[0] as string;
  const yFirst = y[0] as string;
  if (xFirst.startsWith('$') && (yFirst === '+' || yFirst === '#')) return false;
  if (yFirst.startsWith('$') && (xFirst === '+' || xFirst === '#')) return false;
  for (let i = 0; ; i++) {
    const xl = x[i];
    const yl = y[i];
    if (xl === '#' || yl === '#') return true;
    if (xl === undefined || yl === undefined) {
      // One ran out: the other may still end in a `#` that includes its parent level.
      const rest = xl === undefined ? y : x;
      return rest.length === i || (rest.length === i + 1 && rest[i] === '#');
    }
    if (xl === '+' || yl === '+') continue;
    if (xl !== yl) return false;
  }
}

// Values that would change a pattern's shape if substituted: a user called `+` must not get `ota/+/#`.
function unsafeValue(value: string | undefined): boolean {
  return value === undefined || value === '' || /[+#/\0]/.test(value);
}

/**
 * The filter of a pattern for one client, or undefined if it cannot apply. For deny rules an unusable %u or %c
 * turns that level into `+`, so a deny still covers whatever it could have meant (fail closed); for allow rules the
 * pattern simply does not match.
 */
function substitute(pattern: string, client: ClientIdentity, deny: boolean): string | undefined {
  if (!pattern.includes('%')) return pattern;
  const levels = pattern.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i] as string;
    if (!/%[uc]/.test(level)) continue;
    const usesUser = level.includes('%u');
    const usesClient = level.includes('%c');
    if ((usesUser && unsafeValue(client.username)) || (usesClient && unsafeValue(client.clientId))) {
      if (!deny) return undefined;
      levels[i] = '+';
      continue;
    }
    levels[i] = level.replace(/%[uc]/g, (m) => (m === '%u' ? (client.username as string) : client.clientId));
  }
  return levels.join('/');
}

interface CompiledRules {
  clientId: string;
  username: string | undefined;
  read: string[];
  write: string[];
  deny: string[];
}

function compile(rules: AclRules, client: ClientIdentity): CompiledRules {
  const compiled: CompiledRules = {
    clientId: client.clientId,
    username: client.username,
    read: [],
    write: [],
    deny: [],
  };
  const add = (access: AclAccess, filter: string) => {
    if (access === 'deny') compiled.deny.push(filter);
    if (access === 'read' || access === 'readwrite') compiled.read.push(filter);
    if (access === 'write' || access === 'readwrite') compiled.write.push(filter);
  };
  const own = client.username === undefined ? rules.anonymous : (rules.users.get(client.username) ?? []);
  for (const rule of own) add(rule.access, rule.filter);
  for (const rule of rules.patterns) {
    const filter = substitute(rule.filter, client, rule.access === 'deny');
    if (filter !== undefined) add(rule.access, filter);
  }
  return compiled;
}

/**
 * An `Authorize` hook for parsed ACL rules. 'publish' checks a topic name against write rules; 'subscribe' checks a
 * filter, which must be covered entirely by one read rule and overlap no deny rule.
 */
export function createAclAuthorizer(rules: AclRules): Authorize {
  // Rules per client are compiled once per identity object the core passes (one per connection), not per message.
  const cache = new WeakMap<ClientIdentity, CompiledRules>();
  return (client, action, topic) => {
    let compiled = cache.get(client);
    if (compiled === undefined || compiled.clientId !== client.clientId || compiled.username !== client.username) {
      compiled = compile(rules, client);
      cache.set(client, compiled);
    }
    if (action === 'publish') {
      for (const filter of compiled.deny) if (topicMatches(filter, topic)) return false;
      for (const filter of compiled.write) if (topicMatches(filter, topic)) return true;
      return false;
    }
    for (const filter of compiled.deny) if (filtersOverlap(filter, topic)) return false;
    for (const filter of compiled.read) if (filterCovers(filter, topic)) return true;
    return false;
  };
}
