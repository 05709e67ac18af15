// CPU time of this process (user + system, every thread: the main one and libuv's pool) since an earlier reading.
export function cpuSecondsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}
