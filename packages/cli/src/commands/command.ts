// What every `otalink` sub-command module exports.

export interface Command {
  summary: string;
  /** Runs the command and returns the process exit code. */
  run(args: string[]): Promise<number>;
}
