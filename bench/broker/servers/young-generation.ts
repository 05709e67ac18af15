// Answers the runner's `young` request (a line on stdin) with the resident size of V8's young generation, as
// `YOUNG <bytes>` on stdout. V8 grows it from ~3 MB to ~28 MB when many objects survive in a short time (10 000
// connections arriving): memory the process keeps, but a one-off of the heap, not a cost of each connection, so
// the idle row reports RSS per connection without it (and the growth itself on a row of its own).
import { getHeapSpaceStatistics } from 'node:v8';

function youngBytes(): number {
  return getHeapSpaceStatistics()
    .filter((space) => space.space_name === 'new_space')
    .reduce((sum, space) => sum + space.physical_space_size, 0);
}

export function answerYoungGenerationRequests(): void {
  let buffered = '';
  process.stdin.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim() === 'young') process.stdout.write(`YOUNG ${youngBytes()}\n`);
    }
  });
}
