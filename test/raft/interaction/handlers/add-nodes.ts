// add-nodes N [voters=(..)] [learners=(..)] [index=I] [prevote=true] [checkquorum=true]
//           [inflight=K] [max-size-per-msg=B] [election-tick=E] [heartbeat-tick=H]
//           [async-storage-writes=true]
//
// Adds N nodes with the next free ids. With voters/learners their storage holds that
// configuration; with index=I (I > 0) it also holds a snapshot at I of term 1, so the log starts
// after I (raft-rs MemStorage raises the stored term to the snapshot's: the nodes start at term 1).
// Without any configuration the nodes start empty and must learn it from a leader's snapshot.
// With async-storage-writes a Ready's writes become durable only on `persist` (or in stabilize).
import { newConfState, newSnapshot } from "../../../../src/raft/types.ts";
import { ScriptStorage, nodeConfig } from "../env.ts";
import { opt, optIds, optInt, positional } from "./args.ts";
import type { Handler } from "./types.ts";

export const addNodes: Handler = (env, d) => {
  const n = Number(positional(d)[0]);
  if (!Number.isInteger(n) || n < 1) throw new Error("add-nodes: the number of nodes is required");
  const cs = newConfState({ voters: optIds(d, "voters"), learners: optIds(d, "learners") });
  const index = optInt(d, "index") ?? 0;
  const cfg = nodeConfig(d.args);
  for (let i = 0; i < n; i++) {
    const store = new ScriptStorage();
    if (index > 0) store.applySnapshot(newSnapshot(index, 1, cs));
    else store.setConfState(cs);
    env.addNode(store, cfg, opt(d, "async-storage-writes")?.vals[0] === "true");
  }
};
