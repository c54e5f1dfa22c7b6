// compact <id> <index>: the node takes a snapshot of its state machine at `index` (which it must
// have applied) and drops its log up to and including it, as an application does to bound its log.
// A leader that later needs an entry below the new first index sends this snapshot instead.
import { positional } from "./args.ts";
import type { Handler } from "./types.ts";

export const compact: Handler = (env, d) => {
  const [id, idx] = positional(d);
  const n = env.node(BigInt(id));
  const index = Number(idx);
  if (!(index <= n.applied)) throw new Error(`compact: node ${id} has applied ${n.applied} only, not ${index}`);
  n.store.createSnapshot(index, n.confStateAt(index), new Uint8Array());
  n.store.compact(index + 1);
  env.out.write(`snapshot at ${index} (term ${n.store.snap.metadata.term}); log now starts at ${n.store.firstIndex()}`);
};
