// The `otalink` command table: one line per sub-command, each implemented in its own module next to this one.
import { agent } from './agent.js';
import { artifact } from './artifact.js';
import { backend } from './backend.js';
import { broker } from './broker.js';
import { campaign } from './campaign.js';
import type { Command } from './command.js';
import { demo } from './demo.js';
import { passwd } from './passwd.js';
import { pki } from './pki.js';
import { pub } from './pub.js';
import { sim } from './sim.js';
import { sub } from './sub.js';
import { token } from './token.js';
import { up } from './up.js';

export type { Command } from './command.js';

export const commands: Record<string, Command> = {
  up,
  demo,
  broker,
  passwd,
  pub,
  sub,
  agent,
  sim,
  backend,
  artifact,
  campaign,
  token,
  pki,
};
