// Restarts the agent in-process after an activation, as the vehicle's init system would restart the TCU software:
// each lifetime is a fresh Agent that starts from the journal. `otalink agent` exits instead (RESTART_EXIT_CODE)
// and leaves the restart to its process supervisor.
import { type Agent, type AgentEvents, type AgentExit, type AgentOptions, createAgent } from './agent.js';

/** The exit code `otalink agent` uses to ask its supervisor for the activation restart (EX_TEMPFAIL). */
export const RESTART_EXIT_CODE = 75;

export interface AgentRunner {
  /** The agent of the current lifetime. */
  readonly agent: Agent;
  /** Lifetimes started so far (1 + restarts). */
  readonly lifetimes: number;
  /** Settles when the runner stops (close() or kill()), not at restarts. */
  readonly stopped: Promise<AgentExit>;
  close(): Promise<void>;
  /** Kills the current lifetime like a crash and starts a new one from the journal (a kill -9 and a reboot). */
  crashAndRestart(): Promise<Agent>;
  kill(): Promise<void>;
}

export async function runAgent(options: AgentOptions, events: AgentEvents = {}): Promise<AgentRunner> {
  let agent = await createAgent(options, events);
  let lifetimes = 1;
  let stopping = false;
  let resolveStopped!: (exit: AgentExit) => void;
  const stopped = new Promise<AgentExit>((resolve) => {
    resolveStopped = resolve;
  });
  let chain: Promise<void> = Promise.resolve();
  // A lifetime being killed on purpose may still end itself with a restart (activation) meanwhile: not followed.
  const replaced = new WeakSet<Agent>();
  const follow = (current: Agent) => {
    void current.exited.then((exit) => {
      if (current !== agent || replaced.has(current)) return;
      if (exit.reason !== 'restart' || stopping) {
        resolveStopped(exit);
        return;
      }
      chain = chain.then(async () => {
        if (stopping) return;
        agent = await createAgent(options, events);
        lifetimes += 1;
        follow(agent);
      });
    });
  };
  follow(agent);
  return {
    get agent() {
      return agent;
    },
    get lifetimes() {
      return lifetimes;
    },
    stopped,
    async close() {
      stopping = true;
      await chain;
      await agent.close();
      resolveStopped({ reason: 'closed' });
    },
    async kill() {
      stopping = true;
      await chain;
      await agent.kill();
      resolveStopped({ reason: 'killed' });
    },
    async crashAndRestart() {
      await chain;
      const old = agent;
      replaced.add(old);
      await old.kill();
      await chain;
      agent = await createAgent(options, events);
      lifetimes += 1;
      follow(agent);
      return agent;
    },
  };
}
