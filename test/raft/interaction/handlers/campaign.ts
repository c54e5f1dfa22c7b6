// campaign <id>: the node starts an election (a pre-vote round first when pre-vote is on).
import { firstId } from "./args.ts";
import type { Handler } from "./types.ts";

export const campaign: Handler = (env, d) => {
  const n = env.node(firstId(d));
  env.report(() => n.raw.campaign());
};
