// tick-election <id>: ticks the node electionTick times. The randomized timeout is fixed at
// electionTick here, so a follower campaigns and a check-quorum leader runs its quorum check.
import { firstId } from "./args.ts";
import type { Handler } from "./types.ts";

export const tickElection: Handler = (env, d) => {
  const n = env.node(firstId(d));
  for (let i = 0; i < n.config.electionTick; i++) n.raw.tick();
};
