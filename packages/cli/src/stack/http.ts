// The backend's HTTPS server has to listen before the backend starts, because the engine signs artifact download
// URLs under the server's real address (port 0 or a fallback port is only known after listen). Requests that come
// in between are answered 503 by the backend's own not-started refusal.
import type { BackendService } from '@otalink/backend';

/** A BackendService that forwards every call to whatever `current()` returns at call time. */
export function lateService(current: () => BackendService): BackendService {
  return new Proxy({} as BackendService, {
    get(_target, name) {
      const service = current() as unknown as Record<string | symbol, unknown>;
      const value = service[name];
      return typeof value === 'function' ? value.bind(service) : value;
    },
  });
}
