// propose-conf-change <id> [transition=auto|implicit|explicit]
// AddNode(4) AddLearnerNode(5) RemoveNode(2)
//
// Proposes a ConfChangeV2 whose changes are listed in the input, in the notation the traces print.
// No changes with transition=auto is the request to leave a joint configuration. One change with
// transition=auto is a simple change; anything else enters a joint configuration, left
// automatically unless the transition is explicit.
//
// Only ConfChangeV2 exists here: the core refuses the legacy ConfChange (v1) entry, which raft-rs
// would accept and treat as a one-change ConfChangeV2, so scripts write that one change directly.
import { ConfChangeTransition, ConfChangeType, type ConfChangeSingle } from "../../../../src/raft/types.ts";
import { firstId, opt } from "./args.ts";
import type { Handler } from "./types.ts";

const TRANSITIONS: Record<string, ConfChangeTransition> = {
  auto: ConfChangeTransition.Auto,
  implicit: ConfChangeTransition.Implicit,
  explicit: ConfChangeTransition.Explicit,
};

export function parseChanges(input: string[]): ConfChangeSingle[] {
  const changes: ConfChangeSingle[] = [];
  for (const tok of input.join(" ").split(/\s+/).filter((t) => t !== "")) {
    const m = /^(AddNode|AddLearnerNode|RemoveNode)\((\d+)\)$/.exec(tok);
    if (m === null) throw new Error(`propose-conf-change: cannot read "${tok}" (AddNode(N), AddLearnerNode(N) or RemoveNode(N))`);
    changes.push({ changeType: ConfChangeType[m[1] as keyof typeof ConfChangeType], nodeId: BigInt(m[2]) });
  }
  return changes;
}

export const proposeConfChange: Handler = (env, d) => {
  const n = env.node(firstId(d));
  const t = opt(d, "transition")?.vals[0] ?? "auto";
  const transition = TRANSITIONS[t];
  if (transition === undefined) throw new Error(`propose-conf-change: unknown transition ${t}`);
  const cc = { transition, changes: parseChanges(d.input), context: new Uint8Array() };
  env.report(() => n.raw.proposeConfChange(new Uint8Array(), cc));
};
