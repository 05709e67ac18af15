// Where `otalink up` and `otalink pki` keep their state: $OTALINK_HOME, else ./.otalink in the current directory
// (gitignored), so `npm start` in a checkout needs no configuration.
import { resolve } from 'node:path';

export function otalinkHome(env: NodeJS.ProcessEnv = process.env): string {
  const home = env.OTALINK_HOME;
  return resolve(home !== undefined && home !== '' ? home : '.otalink');
}

export function defaultPkiDir(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(otalinkHome(env), 'pki');
}
