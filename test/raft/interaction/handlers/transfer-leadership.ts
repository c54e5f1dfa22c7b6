// transfer-leadership from=<id> to=<id>: asks node `from` to hand leadership to `to` (a follower
// forwards the request to its leader).
import { optInt } from "./args.ts";
import type { Handler } from "./types.ts";

export const transferLeadership: Handler = (env, d) => {
  const from = optInt(d, "from");
  const to = optInt(d, "to");
  if (from === undefined || to === undefined) throw new Error("transfer-leadership: from= and to= are required");
  const n = env.node(from);
  env.report(() => n.raw.transferLeader(BigInt(to)));
};
