// Waiting until the backend sees the fleet: presence is ingested in batches, so "connected at the broker" and
// "online in the API" are a moment apart; `otalink up` prints its summary only when the API agrees.
import type { Backend } from '@otalink/backend';

export async function countOnline(backend: Backend): Promise<{ registered: number; online: number }> {
  let registered = 0;
  let online = 0;
  let cursor: string | undefined;
  // Bounded: a page is at most 1000 vehicles, and the loop stops when the API has no next page.
  for (let page = 0; page < 10_000; page++) {
    const result = await backend.service.listVehicles({ limit: 1000, ...(cursor === undefined ? {} : { cursor }) });
    registered += result.items.length;
    for (const vehicle of result.items) if (vehicle.online) online++;
    cursor = result.nextCursor;
    if (cursor === undefined) break;
  }
  return { registered, online };
}

/** Resolves with the last count once `expected` vehicles are online, or when `timeoutMs` has passed. */
export async function waitForOnline(
  backend: Backend,
  expected: number,
  timeoutMs: number,
): Promise<{ registered: number; online: number; complete: boolean }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const count = await countOnline(backend);
    if (count.online >= expected) return { ...count, complete: true };
    if (Date.now() >= deadline) return { ...count, complete: false };
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
