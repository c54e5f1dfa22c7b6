// Validator set -> Raft membership. The leader turns a difference between the voters of the
// applied ConfState and the validators of the applied configuration into ConfChangeV2 proposals,
// the way the Rust service does: all adds and removes in one change (joint consensus with
// auto-leave when there are several), except a complete replacement, which first adds the new
// validators and only then removes the old ones.
import { ConfChangeTransition, ConfChangeType, type ConfChangeV2, type ConfState, EMPTY_BYTES, type NodeId } from "../raft/index.ts";

/** The next membership change to propose, or undefined when the voters already match. */
export function nextConfChange(cs: ConfState, validators: readonly NodeId[]): ConfChangeV2 | undefined {
  const current = new Set(cs.voters);
  const target = new Set(validators);
  if (target.size === 0) return undefined; // an empty validator list is never a valid target
  const added = [...target].filter((id) => !current.has(id));
  const removed = [...current].filter((id) => !target.has(id));
  if (added.length === 0 && removed.length === 0) return undefined;
  const adds = added.map((nodeId) => ({ changeType: ConfChangeType.AddNode, nodeId }));
  const removes = removed.map((nodeId) => ({ changeType: ConfChangeType.RemoveNode, nodeId }));
  // A complete replacement (no overlap) grows first so that the new voters catch up before the
  // old ones leave; the removal follows once the additions are applied.
  const completeReplacement = added.length === target.size && removed.length === current.size;
  const changes = completeReplacement ? adds : [...adds, ...removes];
  return { transition: ConfChangeTransition.Auto, changes, context: EMPTY_BYTES };
}

/** Whether applying `cc` would remove `id` from the voters. */
export function removesNode(cc: ConfChangeV2, id: NodeId): boolean {
  return cc.changes.some((c) => c.changeType === ConfChangeType.RemoveNode && c.nodeId === id);
}

export function describeConfChange(cc: ConfChangeV2): string {
  if (cc.changes.length === 0) return "leave-joint";
  return cc.changes.map((c) => `${c.changeType === ConfChangeType.AddNode ? "add" : c.changeType === ConfChangeType.RemoveNode ? "remove" : "add-learner"} ${c.nodeId}`).join(", ");
}
