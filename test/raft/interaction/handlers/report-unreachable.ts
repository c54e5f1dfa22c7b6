// report-unreachable <id> <peer>: the application tells node `id` that sending to `peer` failed.
import { ids } from "./args.ts";
import type { Handler } from "./types.ts";

export const reportUnreachable: Handler = (env, d) => {
  const [id, peer] = ids(d);
  if (peer === undefined) throw new Error("report-unreachable: usage: report-unreachable <id> <peer>");
  const n = env.node(id);
  env.report(() => n.raw.reportUnreachable(peer));
};
