// Finds the system programs that interop tests need. Locally a missing one skips the test with a reason;
// under CI (CI=true), where .ci/run installs them, a missing one fails instead, so CI never skips silently.
import { accessSync, constants } from 'node:fs';
import type { TestContext } from 'node:test';

const SEARCH = ['/usr/sbin', '/usr/bin', '/usr/local/bin', '/usr/local/sbin'];

export function findProgram(name: string): string | undefined {
  for (const dir of SEARCH) {
    const path = `${dir}/${name}`;
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** Debian's python3 with paho-mqtt (pyenv's python3 on PATH does not have it). */
export const DEBIAN_PYTHON = '/usr/bin/python3';

/**
 * Returns the program's path, or undefined after skipping the test (locally) or failing it (in CI).
 * Usage: `const mosquitto = requireProgram(t, 'mosquitto'); if (!mosquitto) return;`
 */
export function requireProgram(t: TestContext, name: string, debianPackage = name): string | undefined {
  const path = findProgram(name);
  if (path !== undefined) return path;
  if (process.env.CI === 'true') {
    throw new Error(`${name} is not installed; .ci/run should have installed the Debian package ${debianPackage}`);
  }
  t.skip(`${name} not installed (apt-get install ${debianPackage})`);
  return undefined;
}
