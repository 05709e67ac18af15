// `otalink up` prefers well-known ports (8443 HTTPS, 8883 MQTT over TLS) but must not fail because one is taken on a
// developer's machine: it falls back to a free port and prints what it got.

/** EADDRINUSE, also when wrapped (the broker reports BROKER_ERR_LISTEN with the socket error as its cause). */
export function isAddressInUse(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    if ((current as NodeJS.ErrnoException).code === 'EADDRINUSE') return true;
    current = current.cause;
  }
  return false;
}

/**
 * Runs `start(port)` on the preferred port; if that port is taken (and it was not 0 already), once more on port 0.
 * `start` must clean up after itself when it throws.
 */
export async function withPortFallback<T>(
  preferred: number,
  start: (port: number) => Promise<T>,
  onFallback?: (preferred: number) => void,
): Promise<T> {
  try {
    return await start(preferred);
  } catch (error) {
    if (preferred === 0 || !isAddressInUse(error)) throw error;
    onFallback?.(preferred);
    return start(0);
  }
}
