// `otalink up` prefers well-known ports (8443 HTTPS, 8883 MQTT over TLS) but must not fail because one is taken on a
// developer's machine: it falls back to a free port and prints what it got.

/** The EADDRINUSE error, also when wrapped (the broker reports BROKER_ERR_LISTEN with the socket error as cause). */
function addressInUse(error: unknown): (NodeJS.ErrnoException & { port?: number }) | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    if ((current as NodeJS.ErrnoException).code === 'EADDRINUSE') return current as NodeJS.ErrnoException;
    current = current.cause;
  }
  return undefined;
}

export function isAddressInUse(error: unknown): boolean {
  return addressInUse(error) !== undefined;
}

/**
 * Like withPortFallback for a start that listens on two ports at once: the port named by the EADDRINUSE error is
 * the one replaced by 0, each at most once.
 */
export async function withTwoPortFallback<T>(
  preferred: readonly [number, number],
  start: (ports: [number, number]) => Promise<T>,
  onFallback?: (preferred: number) => void,
): Promise<T> {
  const ports: [number, number] = [preferred[0], preferred[1]];
  for (let attempt = 0; ; attempt++) {
    try {
      return await start([ports[0], ports[1]]);
    } catch (error) {
      const taken = addressInUse(error)?.port;
      const which = ports.findIndex((port) => port !== 0 && port === taken);
      if (attempt >= 2 || which < 0) throw error;
      onFallback?.(ports[which] as number);
      ports[which] = 0;
    }
  }
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
