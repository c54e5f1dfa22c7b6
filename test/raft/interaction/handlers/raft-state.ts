// raft-state: one line per node: role, whether it votes, term and known leader.
import { STATE_ROLE_NAMES } from "../../../../src/raft/raft.ts";
import type { Handler } from "./types.ts";

export const raftState: Handler = (env) => {
  for (const n of env.nodes) {
    const st = n.raw.status();
    const cs = st.confState;
    const member = cs.voters.includes(n.id) || cs.votersOutgoing.includes(n.id) ? "Voter" : cs.learners.includes(n.id) ? "Learner" : "Non-member";
    env.out.write(`${n.id}: ${STATE_ROLE_NAMES[st.softState.raftState]} (${member}) Term:${st.hardState.term} Lead:${st.softState.leaderId}`);
  }
};
