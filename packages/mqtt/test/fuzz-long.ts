// The long codec fuzz run: `npm run fuzz`. FUZZ_SECONDS (default 60) bounds it; FUZZ_SEED (printed at start)
// replays the same sequence of inputs. Progress every 5 s; exit code 1 on a finding, with its seed and input.
import { FuzzFinding, fuzz, runPacketCase } from './codec/fuzz-engine.js';

const seconds = Number(process.env.FUZZ_SECONDS ?? 60);
const seed =
  process.env.FUZZ_SEED === undefined ? (Math.random() * 2 ** 32) >>> 0 : Number(process.env.FUZZ_SEED) >>> 0;
if (!Number.isFinite(seconds) || seconds <= 0) {
  console.error(`FUZZ_SECONDS must be a positive number, got ${process.env.FUZZ_SECONDS}`);
  process.exit(2);
}

console.log(`codec fuzz: ${seconds} s, FUZZ_SEED=${seed}`);
const start = Date.now();
const deadline = start + seconds * 1000;
let nextReport = start + 5000;
let structured = 0;

try {
  const stats = fuzz(seed, (s) => {
    // Checking the clock every 64 inputs keeps it off the profile.
    if ((s.iterations & 63) !== 0) return true;
    // Interleave the structured run: 64 random packet objects through encoder and decoder per batch of inputs.
    for (let i = 0; i < 64; i++)
      structured += runPacketCase((seed ^ 0x9e3779b9) + s.iterations + i) === 'encoded' ? 1 : 0;
    const now = Date.now();
    if (now >= nextReport) {
      const elapsed = (now - start) / 1000;
      console.log(
        `  ${elapsed.toFixed(0)} s: ${s.iterations} inputs (${Math.round(s.iterations / elapsed)}/s), ${s.packets} packets decoded, ${s.errors.size} error codes reached`,
      );
      nextReport += 5000;
    }
    return now < deadline;
  });
  const elapsed = (Date.now() - start) / 1000;
  console.log(
    `done: ${stats.iterations} inputs in ${elapsed.toFixed(1)} s (${Math.round(stats.iterations / elapsed)}/s), ${stats.packets} packets decoded, ${structured} random packet objects encoded and decoded back, no findings`,
  );
  const errors = [...stats.errors].sort((a, b) => b[1] - a[1]);
  console.log(`errors reached: ${errors.map(([code, n]) => `${code.replace('MQTT_ERR_', '')} ${n}`).join(', ')}`);
} catch (error) {
  if (error instanceof FuzzFinding) {
    console.error(`FINDING (replay the run with FUZZ_SEED=${seed}; this input is case seed ${error.fuzzCase.seed}):`);
    console.error(error.message);
    if (error.cause !== undefined) console.error(error.cause);
    process.exit(1);
  }
  throw error;
}
