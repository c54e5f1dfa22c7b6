// set-randomized-election-timeout <id> timeout=T: overrides the node's current randomized election
// timeout (until its next role change draws a new one). Lets a script expire a follower's leader
// lease (electionTick ticks) without the follower campaigning.
import { firstId, optInt } from "./args.ts";
import type { Handler } from "./types.ts";

export const setRandomizedElectionTimeout: Handler = (env, d) => {
  const t = optInt(d, "timeout");
  if (t === undefined) throw new Error("set-randomized-election-timeout: timeout= is required");
  env.node(firstId(d)).raw.raft.randomizedElectionTimeout = t;
};
