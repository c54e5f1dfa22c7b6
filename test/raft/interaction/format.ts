// Compact one-line descriptions of the core's values for the interaction traces. Message types use
// the raft-rs names of the wire enum (MsgAppend, MsgRequestVote, ...); fields that are zero or
// empty are left out, except the term and the log position every message has.
import { decodeConfChangeV2 } from "../../../src/raft/codec.ts";
import type { LightReady, Ready } from "../../../src/raft/raw-node.ts";
import { STATE_ROLE_NAMES, type SoftState } from "../../../src/raft/raft.ts";
import { type Progress, PROGRESS_STATE_NAMES } from "../../../src/raft/tracker/progress.ts";
import {
  type ConfChangeSingle,
  ConfChangeTransition,
  ConfChangeType,
  type ConfChangeV2,
  type ConfState,
  type Entry,
  EntryType,
  type HardState,
  type Message,
  MessageType,
  type NodeId,
  type Snapshot,
} from "../../../src/raft/types.ts";

const text = new TextDecoder();

export function quote(b: Uint8Array): string {
  return JSON.stringify(text.decode(b));
}

export function describeIds(ids: readonly NodeId[]): string {
  return `(${ids.join(" ")})`;
}

/** `Voters:(1 2 3)`, plus the outgoing half, learners and staged learners when there are any. */
export function describeConfState(cs: ConfState): string {
  let s = `Voters:${describeIds(cs.voters)}`;
  if (cs.votersOutgoing.length > 0) s += ` VotersOutgoing:${describeIds(cs.votersOutgoing)}`;
  if (cs.learners.length > 0) s += ` Learners:${describeIds(cs.learners)}`;
  if (cs.learnersNext.length > 0) s += ` LearnersNext:${describeIds(cs.learnersNext)}`;
  if (cs.autoLeave) s += " AutoLeave";
  return s;
}

export function describeChange(c: ConfChangeSingle): string {
  return `${ConfChangeType[c.changeType]}(${c.nodeId})`;
}

/** `AddNode(4) AddLearnerNode(5)`, `Explicit` appended for a non-Auto transition; `LeaveJoint` for the empty change. */
export function describeConfChange(cc: ConfChangeV2): string {
  if (cc.changes.length === 0 && cc.transition === ConfChangeTransition.Auto) return "LeaveJoint";
  let s = cc.changes.map(describeChange).join(" ");
  if (cc.transition !== ConfChangeTransition.Auto) s += ` ${ConfChangeTransition[cc.transition]}`;
  return s;
}

/** `term/index Type payload`. */
export function describeEntry(e: Entry): string {
  const head = `${e.term}/${e.index} ${EntryType[e.entryType]}`;
  if (e.entryType === EntryType.EntryConfChangeV2) return `${head} ${describeConfChange(decodeConfChangeV2(e.data))}`;
  return `${head} ${quote(e.data)}`;
}

export function describeSnapshot(s: Snapshot): string {
  let d = `Index:${s.metadata.index} Term:${s.metadata.term} ${describeConfState(s.metadata.confState)}`;
  if (s.data.length > 0) d += ` Data:${quote(s.data)}`;
  return d;
}

export function describeHardState(h: HardState): string {
  return `HardState Term:${h.term} Vote:${h.vote} Commit:${h.commit}`;
}

export function describeSoftState(s: SoftState): string {
  return `Lead:${s.leaderId} State:${STATE_ROLE_NAMES[s.raftState]}`;
}

export function describeMessage(m: Message): string {
  let s = `${m.from}->${m.to} ${MessageType[m.msgType]} Term:${m.term} Log:${m.logTerm}/${m.index}`;
  if (m.commit !== 0) s += ` Commit:${m.commit}`;
  if (m.commitTerm !== 0) s += ` CommitTerm:${m.commitTerm}`;
  if (m.reject) s += ` Rejected (Hint: ${m.rejectHint})`;
  if (m.requestSnapshot !== 0) s += ` RequestSnapshot:${m.requestSnapshot}`;
  if (m.priority !== 0) s += ` Priority:${m.priority}`;
  if (m.context.length > 0) s += ` Context:${quote(m.context)}`;
  if (m.entries.length > 0) s += ` Entries:[${m.entries.map(describeEntry).join(", ")}]`;
  if (m.snapshot !== undefined) s += ` Snapshot: ${describeSnapshot(m.snapshot)}`;
  return s;
}

function section(lines: string[], title: string, items: string[]): void {
  if (items.length === 0) return;
  lines.push(`${title}:`);
  lines.push(...items);
}

/** Every part of a Ready that is present, in the order the application handles them. */
export function describeReady(rd: Ready): string[] {
  const lines = [`Ready MustSync=${rd.mustSync}:`];
  if (rd.softState !== undefined) lines.push(describeSoftState(rd.softState));
  if (rd.hardState !== undefined) lines.push(describeHardState(rd.hardState));
  section(lines, "ReadStates", rd.readStates.map((r) => `Index:${r.index} Context:${quote(r.requestCtx)}`));
  section(lines, "Entries", rd.entries.map(describeEntry));
  if (rd.snapshot !== undefined) lines.push(`Snapshot ${describeSnapshot(rd.snapshot)}`);
  section(lines, "CommittedEntries", rd.committedEntries.map(describeEntry));
  // raft-rs splits the outbox: a leader's messages may leave before its own write is durable,
  // everyone else's (votes, append acks) only after it.
  section(lines, "Messages", rd.messages.map(describeMessage));
  section(lines, "PersistedMessages", rd.persistedMessages.map(describeMessage));
  return lines;
}

/** What advance() returned, or nothing when it is empty. */
export function describeLightReady(l: LightReady): string[] {
  if (l.commitIndex === undefined && l.committedEntries.length === 0 && l.messages.length === 0) return [];
  const lines = ["LightReady:"];
  if (l.commitIndex !== undefined) lines.push(`Commit:${l.commitIndex}`);
  section(lines, "CommittedEntries", l.committedEntries.map(describeEntry));
  section(lines, "Messages", l.messages.map(describeMessage));
  return lines;
}

/**
 * `Replicate match=11 next=12`, with the flow-control details that matter. `inactive` marks a
 * follower not heard from since the last check-quorum round (or since this node became leader);
 * it is left out for the leader's own entry, which needs no answers.
 */
export function describeProgress(pr: Progress, self = false): string {
  let s = `${PROGRESS_STATE_NAMES[pr.state]} match=${pr.matched} next=${pr.nextIdx}`;
  if (pr.paused) s += " paused";
  if (pr.pendingSnapshot !== 0) s += ` pendingSnap=${pr.pendingSnapshot}`;
  if (pr.pendingRequestSnapshot !== 0) s += ` requestSnap=${pr.pendingRequestSnapshot}`;
  if (!pr.recentActive && !self) s += " inactive";
  if (pr.ins.count > 0) s += ` inflight=${pr.ins.count}${pr.ins.full() ? "[full]" : ""}`;
  return s;
}
