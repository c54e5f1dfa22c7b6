// stabilize [id...]: handles Readies and delivers messages among the nodes (all by default) until
// nothing moves. Messages to nodes outside the set stay queued.
import { ids } from "./args.ts";
import type { Handler } from "./types.ts";

export const stabilize: Handler = (env, d) => {
  env.stabilize(ids(d));
};
