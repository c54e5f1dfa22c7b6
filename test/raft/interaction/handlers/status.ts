// status <id>: the node's applied index and configuration, and on a leader the progress of every
// member (state, match, next, flow control).
import { describeConfState, describeProgress } from "../format.ts";
import { firstId } from "./args.ts";
import type { Handler } from "./types.ts";

export const status: Handler = (env, d) => {
  const id = firstId(d);
  const st = env.node(id).raw.status();
  env.out.write(`applied=${st.applied} ${describeConfState(st.confState)}`);
  if (st.leadTransferee !== undefined) env.out.write(`transferring leadership to ${st.leadTransferee}`);
  if (st.progress === undefined) return;
  const ids = [...st.progress.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const p of ids) env.out.write(`${p}: ${describeProgress(st.progress.get(p)!, p === id)}`);
};
