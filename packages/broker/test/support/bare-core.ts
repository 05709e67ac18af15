// A broker core with default limits, anonymous access and no listener, for unit tests that attach connections to
// in-memory sockets and look at what the core does with them.
import { pino } from 'pino';
import { BrokerCore } from '../../src/core.js';
import { defaultLimits } from '../../src/options.js';
import { createStats } from '../../src/stats.js';

export function bareCore(): BrokerCore {
  return new BrokerCore(
    {
      limits: defaultLimits,
      allowAnonymous: true,
      clientIdFromUsername: false,
      authenticate: undefined,
      authorize: undefined,
      enhancedAuth: new Map(),
      logger: pino({ level: 'silent' }),
    },
    createStats(),
  );
}
