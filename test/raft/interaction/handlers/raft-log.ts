// raft-log <id>: the entries in the node's storage (its durable log).
import { describeEntry } from "../format.ts";
import { firstId } from "./args.ts";
import type { Handler } from "./types.ts";

export const raftLog: Handler = (env, d) => {
  const { store } = env.node(firstId(d));
  const ents = store.allEntries();
  if (ents.length === 0) env.out.write(`log is empty: first index=${store.firstIndex()}, last index=${store.lastIndex()}`);
  for (const e of ents) env.out.write(describeEntry(e));
};
