// A running broker re-reads its config (SIGHUP in `otalink broker`) and takes from it what can change without
// closing a connection: the password file, the ACL file and allow_anonymous (as Mosquitto does on SIGHUP), and the
// TLS listeners' certificates, keys and client CAs (renewed certificates for new handshakes). Listeners, limits and
// the store stay as they started: they change at the next restart. A config that no longer loads changes nothing;
// the caller logs why.
import { formatPasswordHash, type PasswordHash } from '../auth/password-file.js';
import type { Broker } from '../broker.js';
import { BrokerError } from '../errors.js';
import type { AuthenticatedBy, AuthUpdateResult, ClientIdentity } from '../options.js';
import { type ResolveBrokerConfigOptions, type ResolvedBrokerConfig, resolveBrokerConfig } from './load.js';

export interface BrokerReload {
  /** The config now in force (pass it to the next reload). */
  config: ResolvedBrokerConfig;
  auth: AuthUpdateResult;
  /** Users whose password file line changed or went: their connections were ended. */
  changedUsers: string[];
  /** TLS listeners now handing out the certificates the config names. */
  tlsListeners: number;
  /** What the reload could not apply (listeners changed: a restart applies them). */
  warnings: string[];
}

/** Reads the config again (throws BrokerConfigError, changing nothing, if it does not load) and applies it. */
export async function reloadBroker(
  broker: Broker,
  request: ResolveBrokerConfigOptions,
  previous: ResolvedBrokerConfig,
): Promise<BrokerReload> {
  const config = await resolveBrokerConfig(request);
  const { options } = config;
  const warnings: string[] = [];
  let tlsListeners = 0;
  try {
    tlsListeners = broker.updateTls(options.listeners ?? []);
  } catch (error) {
    if (!(error instanceof BrokerError)) throw error;
    warnings.push(`TLS certificates not reloaded: ${error.message}`);
  }
  const allowAnonymous = options.allowAnonymous === true;
  const changedUsers = changed(previous.passwordUsers, config.passwordUsers);
  // Without a password file a user name was taken on trust (allow_anonymous): such a client is as good as anonymous,
  // and must log in again once names are checked (a password file now) or anonymous access ends.
  const trusted = previous.passwordUsers === undefined;
  const stillTrusted = config.passwordUsers === undefined && allowAnonymous;
  const revoke = (client: ClientIdentity, by: AuthenticatedBy): boolean => {
    if (by === 'anonymous') return !allowAnonymous;
    if (by !== 'password' || client.username === undefined) return false;
    return trusted ? !stillTrusted : changedUsers.has(client.username);
  };
  const auth = broker.updateAuth({
    authenticate: options.authenticate ?? null,
    authorize: options.authorize ?? null,
    allowAnonymous,
    revoke,
  });
  return { config, auth, changedUsers: [...changedUsers], tlsListeners, warnings };
}

/** User names whose entry differs between the two files (removed, added or given another hash). */
function changed(
  before: ReadonlyMap<string, PasswordHash> | undefined,
  after: ReadonlyMap<string, PasswordHash> | undefined,
): Set<string> {
  const names = new Set<string>();
  const line = (hash: PasswordHash | undefined) => (hash === undefined ? undefined : formatPasswordHash(hash));
  for (const [name, hash] of before ?? []) if (line(hash) !== line(after?.get(name))) names.add(name);
  for (const name of after?.keys() ?? []) if (before?.has(name) !== true) names.add(name);
  return names;
}
