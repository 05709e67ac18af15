// From a config file (plus environment and flags) to BrokerOptions: opens the files the config names (certificates,
// password file, ACL file) so a broker that starts has everything it needs, and one that cannot says why at once.
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createAclAuthorizer, readAclFile } from '../auth/acl.js';
import { AuthFileError } from '../auth/errors.js';
import { createPasswordAuthenticator, type PasswordHash, readPasswordFile } from '../auth/password-file.js';
import type { BrokerOptions, ListenerOptions } from '../options.js';
import { BrokerConfigError, type SettingOrigin } from './errors.js';
import { type ConfigDraft, emptyDraft, type ListenerDraft, type Located } from './keys.js';
import { applyOverrides, type BrokerFlags, configFileFromEnvironment, type Environment } from './overrides.js';
import { checkListener, parseBrokerConfig } from './parse.js';

export interface ResolveBrokerConfigOptions {
  /** Config file path (-c/--config); falls back to OTALINK_BROKER_CONFIG; none: defaults, env and flags only. */
  configFile?: string;
  /** Default: process.env. */
  env?: Environment;
  flags?: BrokerFlags;
}

export interface ResolvedBrokerConfig {
  options: BrokerOptions;
  /** The config file read, if any. */
  configFile: string | undefined;
  /** Things worth a log line that do not stop start-up. */
  warnings: string[];
  /** The users of the password file as read, so that a reload can tell whose credentials changed. */
  passwordUsers: ReadonlyMap<string, PasswordHash> | undefined;
}

async function readSettingFile(setting: Located<string>, key: string): Promise<Buffer> {
  try {
    return await readFile(setting.value);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new BrokerConfigError(setting.origin, key, `cannot read "${setting.value}" (${reason})`, { cause: error });
  }
}

function firstLine(error: unknown): string {
  return String((error as Error).message ?? error).split('\n')[0] as string;
}

async function listenerOptions(draft: ListenerDraft): Promise<ListenerOptions> {
  const protocol = checkListener(draft);
  const listener: ListenerOptions = { protocol, port: draft.port };
  if (draft.host !== undefined) listener.host = draft.host;
  if (draft.path !== undefined) listener.path = draft.path.value;
  if (draft.certfile === undefined || draft.keyfile === undefined) return listener;

  // node:tls only for a TLS listener: a plain broker's start-up does not load it.
  const { createSecureContext } = await import('node:tls');
  const cert = await readSettingFile(draft.certfile, 'certfile');
  const key = await readSettingFile(draft.keyfile, 'keyfile');
  const ca = draft.cafile === undefined ? undefined : await readSettingFile(draft.cafile, 'cafile');
  // Check the PEM now: a broken certificate should stop start-up at its config line, not fail every handshake.
  try {
    new X509Certificate(cert);
  } catch (error) {
    throw new BrokerConfigError(
      draft.certfile.origin,
      'certfile',
      `"${draft.certfile.value}" is not a PEM certificate (${firstLine(error)})`,
    );
  }
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    throw new BrokerConfigError(
      draft.keyfile.origin,
      'keyfile',
      `"${draft.keyfile.value}" is not the private key of certfile "${draft.certfile.value}" (${firstLine(error)})`,
    );
  }
  if (ca !== undefined && draft.cafile !== undefined) {
    try {
      createSecureContext({ ca });
      new X509Certificate(ca);
    } catch (error) {
      throw new BrokerConfigError(
        draft.cafile.origin,
        'cafile',
        `"${draft.cafile.value}" is not a PEM certificate (${firstLine(error)})`,
      );
    }
  }
  listener.tls = { cert, key };
  if (ca !== undefined) listener.tls.ca = ca;
  if (draft.requireCertificate?.value === true) listener.tls.requireClientCertificate = true;
  if (draft.useIdentityAsUsername?.value === true) listener.tls.identityFromCertificate = true;
  return listener;
}

/** Turns an error in a password or ACL file into a config error that points into that file. */
function authFileError(error: unknown, setting: Located<string>, key: string): unknown {
  if (!(error instanceof AuthFileError)) return error;
  const problem = error.message.startsWith(`${error.file}: `)
    ? error.message.slice(`${error.file}: `.length)
    : error.message;
  if (error.file !== undefined && error.line !== undefined) {
    const origin: SettingOrigin = { kind: 'file', file: error.file, line: error.line };
    const inFile = problem.startsWith(`${error.file}:${error.line}: `)
      ? problem.slice(`${error.file}:${error.line}: `.length)
      : problem;
    return new BrokerConfigError(origin, key, inFile, { cause: error });
  }
  return new BrokerConfigError(setting.origin, key, `"${setting.value}": ${problem}`, { cause: error });
}

/** BrokerOptions from a complete draft: reads the files it names. */
export async function buildBrokerOptions(draft: ConfigDraft): Promise<BrokerOptions> {
  return (await build(draft)).options;
}

async function build(
  draft: ConfigDraft,
): Promise<{ options: BrokerOptions; passwordUsers: ReadonlyMap<string, PasswordHash> | undefined }> {
  const options: BrokerOptions = {};
  let passwordUsers: ReadonlyMap<string, PasswordHash> | undefined;
  options.listeners = [];
  for (const listener of draft.listeners) options.listeners.push(await listenerOptions(listener));
  if (options.listeners.length === 0) options.listeners.push({ protocol: 'mqtt', port: 1883 });
  const allowAnonymous = draft.allowAnonymous ?? false;
  options.allowAnonymous = allowAnonymous;
  if (draft.useUsernameAsClientId === true) options.clientIdFromUsername = true;
  if (draft.passwordFile !== undefined) {
    try {
      passwordUsers = readPasswordFile(draft.passwordFile.value);
      options.authenticate = createPasswordAuthenticator(passwordUsers, { allowAnonymous });
    } catch (error) {
      throw authFileError(error, draft.passwordFile, 'password_file');
    }
  }
  if (draft.aclFile !== undefined) {
    try {
      options.authorize = createAclAuthorizer(readAclFile(draft.aclFile.value));
    } catch (error) {
      throw authFileError(error, draft.aclFile, 'acl_file');
    }
  }
  if (Object.keys(draft.limits).length > 0) options.limits = { ...draft.limits };
  if (draft.sysIntervalSeconds !== undefined) options.sysIntervalSeconds = draft.sysIntervalSeconds;
  if (draft.metrics !== undefined) options.metrics = { ...draft.metrics };
  if (draft.logLevel !== undefined) options.logLevel = draft.logLevel;
  if (draft.dataDir !== undefined) options.dataDir = draft.dataDir;
  if (draft.storeSync !== undefined || draft.storeReserveBytes !== undefined) {
    options.storeOptions = {};
    if (draft.storeSync !== undefined) options.storeOptions.sync = draft.storeSync;
    if (draft.storeReserveBytes !== undefined) options.storeOptions.reserveBytes = draft.storeReserveBytes;
  }
  return { options, passwordUsers };
}

async function readConfigText(file: string, origin: SettingOrigin): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new BrokerConfigError(origin, 'config', `cannot read the config file "${file}" (${reason})`, {
      cause: error,
    });
  }
}

/** Config file (if any) + OTALINK_BROKER_* environment + flags → BrokerOptions, with warnings. */
export async function resolveBrokerConfig(request: ResolveBrokerConfigOptions = {}): Promise<ResolvedBrokerConfig> {
  const env = request.env ?? process.env;
  const fromEnv = configFileFromEnvironment(env);
  const configFile = request.configFile ?? fromEnv;
  let draft = emptyDraft();
  if (configFile !== undefined) {
    const origin: SettingOrigin =
      request.configFile !== undefined
        ? { kind: 'flag', name: '--config' }
        : { kind: 'env', name: 'OTALINK_BROKER_CONFIG' };
    draft = parseBrokerConfig(await readConfigText(configFile, origin), configFile);
  }
  const warnings = applyOverrides(draft, env, request.flags ?? {});
  const { options, passwordUsers } = await build(draft);
  if (options.authenticate === undefined && options.allowAnonymous !== true) {
    warnings.push('no password_file and allow_anonymous is false: every client will be refused (set one of them)');
  }
  return { options, configFile, warnings, passwordUsers };
}

/**
 * BrokerOptions from a config file, with OTALINK_BROKER_* variables from `env` (default: none, so the result
 * depends on the file alone) and flags on top.
 */
export async function loadBrokerConfig(
  path: string,
  overrides: { env?: Environment; flags?: BrokerFlags } = {},
): Promise<BrokerOptions> {
  const draft = parseBrokerConfig(await readConfigText(path, { kind: 'default' }), path);
  applyOverrides(draft, overrides.env ?? {}, overrides.flags ?? {});
  return buildBrokerOptions(draft);
}
