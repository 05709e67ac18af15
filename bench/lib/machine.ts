// What the numbers were measured on: a benchmark table means little without the runtime and the CPU.
import { cpus } from 'node:os';

export interface MachineInfo {
  node: string;
  v8: string;
  cpu: string;
  cores: number;
  date: string;
}

export function machineInfo(): MachineInfo {
  const list = cpus();
  const first = list[0];
  const speed = first !== undefined && first.speed > 0 ? ` @ ${(first.speed / 1000).toFixed(2)} GHz` : '';
  return {
    node: process.version,
    v8: process.versions.v8,
    cpu: `${first?.model.trim() ?? 'unknown'}${speed}`,
    cores: list.length,
    date: new Date().toISOString(),
  };
}
