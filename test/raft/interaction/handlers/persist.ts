// persist <id> [ready=N]: for a node with asynchronous writes, its Readies up to N (all by
// default) are now durable: the votes and acks that waited for them are sent, and the node learns
// it through onPersistReady. Prints what was sent.
import { firstId, optInt } from "./args.ts";
import type { Handler } from "./types.ts";

export const persist: Handler = (env, d) => {
  const n = env.node(firstId(d));
  if (!n.asyncWrites) throw new Error(`persist: node ${n.id} writes synchronously`);
  env.persist(n, optInt(d, "ready"));
};
