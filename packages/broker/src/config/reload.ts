// A running broker re-reads its config (SIGHUP in `otalink broker`) and takes the password file, the ACL file and
// allow_anonymous from it, as Mosquitto does on SIGHUP. Listeners, limits and the store stay as they started: they
// change at the next restart. A config that no longer loads changes nothing; the caller logs why.
import { formatPasswordHash, type PasswordHash } from '../auth/password-file.js';
import type { Broker } from '../broker.js';
import type { AuthenticatedBy, AuthUpdateResult, ClientIdentity } from '../options.js';
import { type ResolveBrokerConfigOptions, type ResolvedBrokerConfig, resolveBrokerConfig } from './load.js';

export interface BrokerAuthReload {
  /** The config now in force (pass it to the next reload). */
  config: ResolvedBrokerConfig;
  result: AuthUpdateResult;
  /** Users whose password file line changed or went: their connections were ended. */
  changedUsers: string[];
}

/** Reads the config again (throws BrokerConfigError, changing nothing, if it does not load) and applies its auth. */
export async function reloadBrokerAuth(
  broker: Broker,
  request: ResolveBrokerConfigOptions,
  previous: ResolvedBrokerConfig,
): Promise<BrokerAuthReload> {
  const config = await resolveBrokerConfig(request);
  const { options } = config;
  const allowAnonymous = options.allowAnonymous === true;
  const changedUsers = changed(previous.passwordUsers, config.passwordUsers);
  const revoke = (client: ClientIdentity, by: AuthenticatedBy): boolean => {
    if (by === 'anonymous') return !allowAnonymous;
    return by === 'password' && client.username !== undefined && changedUsers.has(client.username);
  };
  const result = broker.updateAuth({
    authenticate: options.authenticate ?? null,
    authorize: options.authorize ?? null,
    allowAnonymous,
    revoke,
  });
  return { config, result, changedUsers: [...changedUsers] };
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
