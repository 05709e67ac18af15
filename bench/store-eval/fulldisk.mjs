// Full disk: fill a small tmpfs (mounted by run.mjs or by hand:
//   mount -t tmpfs -o size=2m tmpfs /tmp/store-eval/full) with 1 KiB messages from 10 publishers until writes fail,
// then reopen and check that everything acknowledged before the failure is still there, and that deleting
// half the messages lets writes succeed again.
//   node fulldisk.mjs <candidate> <dir on the small filesystem>
import fs from 'node:fs';
import { candidates } from './stores.mjs';

const [name, dir] = process.argv.slice(2);
fs.rmSync(dir, { recursive: true, force: true });
const result = { mode: 'fulldisk', candidate: name };
// lmdb-js rejects an internal promise nobody holds when a commit fails; without this the process dies.
process.on('unhandledRejection', (err) => {
  result.unhandledRejection = `${err?.code ?? ''} ${err?.message}`.slice(0, 200);
});
let store;
try {
  store = await candidates[name](dir);
} catch (err) {
  result.openError = `${err.code ?? ''} ${err.message}`;
}
const acked = [];
if (store) {
  let next = 0;
  let firstError;
  const publisher = async () => {
    while (!firstError && next < 100_000) {
      const id = next++;
      try {
        await store.put(id, Buffer.alloc(1024, id % 251));
        acked.push(id);
      } catch (err) {
        firstError ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: 10 }, publisher));
  result.ackedBeforeError = acked.length;
  result.error = firstError ? `${firstError.code ?? ''} ${firstError.message}`.slice(0, 200) : 'none';
  // Free space by deleting half, then try to write again without reopening.
  try {
    await Promise.all(acked.filter((id) => id % 2 === 0).map((id) => store.delete(id)));
    result.deleteAfterFull = 'ok';
  } catch (err) {
    result.deleteAfterFull = `${err.code ?? ''} ${err.message}`.slice(0, 200);
  }
  try {
    await store.put(1_000_000, Buffer.alloc(1024, 1));
    result.writeAfterDelete = 'ok';
  } catch (err) {
    result.writeAfterDelete = `${err.code ?? ''} ${err.message}`.slice(0, 200);
  }
  try {
    await store.close();
  } catch (err) {
    result.closeError = String(err.message).slice(0, 200);
  }
  try {
    const reopened = await candidates[name](dir);
    const odd = acked.filter((id) => id % 2 === 1);
    result.reopenedMissingAcked = odd.filter((id) => !reopened.has(id)).length;
    await reopened.close();
  } catch (err) {
    result.reopenError = `${err.code ?? ''} ${err.message}`.slice(0, 200);
  }
}
process.stdout.write(`${JSON.stringify(result)}\n`);
