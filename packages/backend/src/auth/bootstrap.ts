// The first admin token: a backend whose store holds no token at all creates one on start and writes it to a file
// only its user can read, so a fresh install is locked from the first request and its operator still gets in.
import { chmod, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '../logger.js';
import type { ApiTokens } from './tokens.js';

/** File name of the bootstrap admin token in the data directory. */
export const ADMIN_TOKEN_FILE = 'admin-token';

/** Writes `token` to `path` with mode 0600, atomically (a reader never sees half a token). */
export async function writeTokenFile(path: string, token: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.${process.pid}.${Date.now()}.tmp`;
  try {
    await writeFile(temp, `${token}\n`, { mode: 0o600, flag: 'wx' });
    // The mode above passes through the umask, which can only remove bits; chmod states it outright.
    await chmod(temp, 0o600);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/**
 * Creates the bootstrap admin token when the store has no token yet. The file is written before the token is
 * stored, so a crash in between leaves at worst a file with a token that does not work (and the next start, still
 * with an empty store, replaces it), never a stored admin token nobody knows.
 */
export async function ensureBootstrapToken(
  tokens: ApiTokens,
  path: string,
  logger: Logger,
): Promise<{ created: boolean; id?: string }> {
  if ((await tokens.count()) > 0) return { created: false };
  const { info } = await tokens.create({ name: 'bootstrap admin', role: 'admin' }, (token) =>
    writeTokenFile(path, token),
  );
  // The id only: the token itself goes to the file and nowhere else.
  logger.info({ tokenId: info.id, file: path }, 'no API token existed: created an admin token, readable in the file');
  return { created: true, id: info.id };
}
