// What every `otalink` sub-command module exports, and the line the command table keeps for it.

export interface Command {
  /** Runs the command and returns the process exit code. */
  run(args: string[]): Promise<number>;
}

/** A sub-command as the table lists it: its one-line summary, and its module, imported only to run it. */
export interface CommandEntry {
  summary: string;
  load(): Promise<Command>;
}
