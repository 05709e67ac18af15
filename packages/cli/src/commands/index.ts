// The `otalink` command table: one line per sub-command, each implemented in its own module next to this one and
// loaded only when it runs, so `otalink --help` or `otalink sub` does not load the backend, the broker and SQLite.
import type { CommandEntry } from './command.js';

export type { Command, CommandEntry } from './command.js';

export const commands: Record<string, CommandEntry> = {
  up: {
    summary: 'start the whole stack: broker, backend, dashboard and a simulated fleet (npm start)',
    load: async () => (await import('./up.js')).up,
  },
  demo: {
    summary: 'run one update campaign on a throw-away stack with simulated vehicles and print the outcome',
    load: async () => (await import('./demo.js')).demo,
  },
  broker: {
    summary: 'run the MQTT broker (config file, OTALINK_BROKER_* variables, flags)',
    load: async () => (await import('./broker.js')).broker,
  },
  passwd: {
    summary: 'manage the broker password file (like mosquitto_passwd)',
    load: async () => (await import('./passwd.js')).passwd,
  },
  pub: {
    summary: 'publish a message (mosquitto_pub options)',
    load: async () => (await import('./pub.js')).pub,
  },
  sub: {
    summary: 'subscribe and print messages (mosquitto_sub options)',
    load: async () => (await import('./sub.js')).sub,
  },
  agent: {
    summary: 'run a vehicle TCU agent (OTA updates over MQTT, A/B install, rollback)',
    load: async () => (await import('./agent.js')).agent,
  },
  sim: {
    summary: 'simulate a fleet of vehicles (agents with failure knobs) against a broker',
    load: async () => (await import('./sim.js')).sim,
  },
  backend: {
    summary: 'run the OEM backend: REST API, signed artifact downloads, campaigns, dashboard (HTTPS)',
    load: async () => (await import('./backend.js')).backend,
  },
  artifact: {
    summary: 'upload update images to the backend, list them, export the manifest signing keys',
    load: async () => (await import('./artifact.js')).artifact,
  },
  campaign: {
    summary: 'create, start, pause, resume, cancel, inspect and watch update campaigns',
    load: async () => (await import('./campaign.js')).campaign,
  },
  token: {
    summary: 'create, list and revoke API tokens (viewer, operator, admin)',
    load: async () => (await import('./token.js')).token,
  },
  pki: {
    summary: 'development PKI: a CA, server and backend certificates, per-VIN vehicle certificates',
    load: async () => (await import('./pki.js')).pki,
  },
};
