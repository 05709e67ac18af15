// A vehicle agent in its own process, for the SIGKILL test: options come as JSON in argv[2] (public keys in hex);
// an activation exits with RESTART_EXIT_CODE and the test, playing the supervisor, starts the process again.
import { pino } from 'pino';
import { createAgent, RESTART_EXIT_CODE } from '../../src/index.js';

interface ProcessOptions {
  vin: string;
  stateDir: string;
  url: string;
  ca: string;
  keys: Array<{ keyId: string; publicKeyHex: string }>;
}

const options = JSON.parse(process.argv[2] ?? '{}') as ProcessOptions;
const agent = await createAgent({
  vin: options.vin,
  stateDir: options.stateDir,
  hardwareId: 'tcu-v2',
  installedVersion: '2.0.3',
  trustedKeys: options.keys.map((k) => ({ keyId: k.keyId, publicKey: Buffer.from(k.publicKeyHex, 'hex') })),
  mqtt: { url: options.url, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } },
  topics: { vinMode: 'simulation' },
  download: { ca: options.ca, initialDelayMs: 20, maxDelayMs: 200 },
  logger: pino({ level: 'silent' }),
});
const exit = await agent.exited;
process.exit(exit.reason === 'restart' ? RESTART_EXIT_CODE : 0);
