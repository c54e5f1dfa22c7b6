// The service invariants of a chain run, checked as things happen and after every step. What the
// checker sees: every CommitBlock a consensus sends and the answers it gets, every block each
// controller holds, every raft message a node hands to its transport (with what its storage had
// made durable at that moment), each restart's durable state, and the nodes' Raft state.
import type { ControllerEmulator } from "../../../src/devchain/controller.ts";
import { toHex } from "../../../src/devchain/identity.ts";
import { MAX_QUEUED_ENTRIES } from "../../../src/node/committer.ts";
import type { ConsensusNode } from "../../../src/node/node.ts";
import { StateRole } from "../../../src/raft/raft.ts";
import { type Message, MessageType } from "../../../src/raft/types.ts";
import { type StaleRejection, staleRejectionActedOn, staleRejectionBefore } from "../checker.ts";
import type { DurableView } from "./storage.ts";

export const CHAIN_INVARIANTS = [
  "no fork",
  "block is the raft proposal",
  "one proposal per height",
  "commit once in order",
  "lost block comes back",
  "persist before ack",
  "acks survive crashes",
  "one leader per term",
  "stale rejection ignored",
  "queue bounds",
  "no fatal error",
  "no uncaught error",
  "stop within bound",
  "no storm",
  "liveness",
] as const;
export type ChainInvariant = (typeof CHAIN_INVARIANTS)[number];

export class Violation extends Error {
  constructor(
    readonly invariant: ChainInvariant,
    readonly detail: string,
  ) {
    super(`${invariant}: ${detail}`);
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const short = (b: Uint8Array) => toHex(b).slice(0, 12);

/** What one incarnation of a node's consensus has seen of its CommitBlock answers. */
interface CommitView {
  incarnation: number;
  /** Height of the chain configuration the incarnation started from (its applied height). */
  startHeight: number;
  /** Highest height committed successfully in this incarnation. */
  top: number;
}

/** The promises a node made on the wire (the latest of each kind). */
interface Acks {
  vote?: { term: number; to: bigint };
  append?: { term: number; index: number };
}

export class ChainChecker {
  private readonly skip: ReadonlySet<string>;
  /** Proposal bytes by height: the first CommitBlock anyone sent for it. */
  private readonly proposals = new Map<number, { data: Uint8Array; from: string }>();
  /** Block hash by height: the first block any controller held at it. */
  private readonly hashes = new Map<number, { hash: string; at: string }>();
  /** Per controller: heights already compared. */
  private readonly checked: number[];
  /** Orders commit answers and losses (several can happen at one simulated moment). */
  private events = 0;
  /** Per node: when (event number) its controller lost each height (power loss), latest loss. */
  private readonly lostAt: Map<number, number>[];
  /** Per node: the hash of each block its controller lost and has not got back yet. */
  private readonly lostBlocks: Map<number, string>[];
  /** Per node: when (event number) its consensus last got Success for each height. */
  private readonly committedAt: Map<number, number>[];
  private readonly views: (CommitView | undefined)[];
  private readonly acks: Acks[];
  /** Leader of each term since the last time every node's Raft state was wiped. */
  private leaders = new Map<number, bigint>();

  constructor(
    private readonly controllers: readonly ControllerEmulator[],
    private readonly names: readonly string[],
    skip: readonly string[] = [],
  ) {
    this.skip = new Set(skip);
    const n = controllers.length;
    this.checked = controllers.map((c) => c.height);
    this.lostAt = Array.from({ length: n }, () => new Map());
    this.lostBlocks = Array.from({ length: n }, () => new Map());
    this.committedAt = Array.from({ length: n }, () => new Map());
    this.views = new Array(n).fill(undefined);
    this.acks = Array.from({ length: n }, () => ({}));
  }

  /** The first violation of the run. Hooks called from inside node code never throw into it. */
  violation: Violation | undefined;

  fail(invariant: ChainInvariant, detail: string): void {
    if (this.skip.has(invariant)) return;
    this.violation ??= new Violation(invariant, detail);
  }

  // ---------------------------------------------------------------- blocks and commits

  /** A CommitBlock request of node `i`'s consensus reached its controller. */
  onCommitRequest(i: number, height: number, data: Uint8Array): void {
    const known = this.proposals.get(height);
    if (known === undefined) this.proposals.set(height, { data, from: this.names[i] });
    else if (!sameBytes(known.data, data)) {
      this.fail(
        "one proposal per height",
        `${this.names[i]}'s consensus commits ${short(data)} at height ${height}, ${known.from}'s committed ${short(known.data)}: Raft handed two different proposals out for one height`,
      );
    }
  }

  /** Node `i`'s consensus (incarnation `inc`) got Success for a CommitBlock at `height`. */
  onCommitSuccess(i: number, inc: number, height: number): void {
    const v = this.views[i];
    if (v === undefined || v.incarnation !== inc) throw new Error(`checker: commit answer for ${this.names[i]}#${inc} before its start`);
    const last = this.committedAt[i].get(height);
    const lost = this.lostAt[i].get(height);
    const lostSince = lost !== undefined && (last === undefined || lost > last);
    if (height <= v.top && !lostSince) {
      this.fail(
        "commit once in order",
        `${this.names[i]}#${inc} committed height ${height} after height ${v.top}` +
          (last === undefined ? "" : ` (height ${height} had succeeded before)`) +
          `, and its controller had not lost it since`,
      );
    }
    if (height > v.top && last !== undefined && height <= v.startHeight && !lostSince) {
      this.fail(
        "commit once in order",
        `${this.names[i]}#${inc} committed height ${height} again after a restart, though it started from applied height ${v.startHeight} and its controller had not lost the block`,
      );
    }
    if (height > v.top) v.top = height;
    this.committedAt[i].set(height, ++this.events);
  }

  /** Node `i`'s controller is about to lose its blocks above `height` (a power loss). */
  onControllerLoss(i: number, height: number): void {
    const c = this.controllers[i];
    for (let h = height + 1; h <= c.height; h++) {
      this.lostAt[i].set(h, ++this.events);
      this.lostBlocks[i].set(h, toHex(c.block(h)!.hash));
    }
    this.checked[i] = Math.min(this.checked[i], height);
  }

  /** Compares every block a controller gained since the last step with what came before. */
  checkBlocks(): void {
    for (let i = 0; i < this.controllers.length; i++) {
      const c = this.controllers[i];
      if (c.height < this.checked[i]) this.checked[i] = c.height;
      for (let h = this.checked[i] + 1; h <= c.height; h++) {
        const b = c.block(h)!;
        const hash = toHex(b.hash);
        const lost = this.lostBlocks[i].get(h);
        if (lost !== undefined) {
          if (lost !== hash) this.fail("lost block comes back", `${c.name} lost block ${h} (${lost.slice(0, 12)}) and now holds ${hash.slice(0, 12)} there (${b.source})`);
          this.lostBlocks[i].delete(h);
        }
        const first = this.hashes.get(h);
        if (first === undefined) this.hashes.set(h, { hash, at: c.name });
        else if (first.hash !== hash) {
          this.fail("no fork", `height ${h}: ${first.at} holds ${first.hash.slice(0, 12)}, ${c.name} holds ${hash.slice(0, 12)} (${b.source})`);
        }
        const p = this.proposals.get(h);
        if (p === undefined) {
          this.fail("block is the raft proposal", `${c.name} holds block ${h} (${b.source}) though no consensus ever committed a proposal at that height`);
        } else if (!sameBytes(p.data, b.data)) {
          this.fail("block is the raft proposal", `${c.name} holds ${short(b.data)} at height ${h}, Raft committed ${short(p.data)}`);
        }
      }
      this.checked[i] = c.height;
    }
  }

  /** Lost blocks a controller has not got back yet (liveness waits for them). */
  missingLostBlocks(): string[] {
    const out: string[] = [];
    this.controllers.forEach((c, i) => {
      if (this.lostBlocks[i].size > 0) out.push(`${c.name} at ${c.height} has not got back its lost blocks ${[...this.lostBlocks[i].keys()].join(",")}`);
    });
    return out;
  }

  // ---------------------------------------------------------------- processes

  /** A consensus incarnation starts from storage holding `durable` and applied height `startHeight`. */
  onStart(i: number, inc: number, durable: DurableView, startHeight: number, wiped: boolean): void {
    this.views[i] = { incarnation: inc, startHeight, top: -1 };
    const a = this.acks[i];
    if (wiped) {
      this.acks[i] = {};
      return;
    }
    const who = `${this.names[i]}#${inc}`;
    if (a.vote && (durable.term < a.vote.term || (durable.term === a.vote.term && durable.vote !== a.vote.to))) {
      this.fail("acks survive crashes", `${who} restarts with term ${durable.term} vote ${durable.vote}, but had granted its vote to ${a.vote.to} in term ${a.vote.term}`);
    }
    if (a.append && (durable.term < a.append.term || (durable.term === a.append.term && durable.lastIndex < a.append.index))) {
      this.fail("acks survive crashes", `${who} restarts with term ${durable.term} and last index ${durable.lastIndex}, but had acknowledged index ${a.append.index} in term ${a.append.term}`);
    }
  }

  /** Node `i` hands a raft message to its transport while its storage holds `durable`. */
  onRaftSend(i: number, m: Message, durable: DurableView): void {
    if (m.reject) return;
    const term = m.term;
    if (m.msgType === MessageType.MsgRequestVoteResponse) {
      if (durable.term < term || (durable.term === term && durable.vote !== m.to)) {
        this.fail("persist before ack", `${this.names[i]} grants its vote to ${m.to} in term ${term} while its durable state is term ${durable.term} vote ${durable.vote}`);
      }
      this.acks[i].vote = { term, to: m.to };
    } else if (m.msgType === MessageType.MsgAppendResponse) {
      const index = m.index;
      if (durable.term < term || durable.lastIndex < index) {
        this.fail("persist before ack", `${this.names[i]} acknowledges index ${index} in term ${term} while its durable log ends at ${durable.lastIndex} (term ${durable.term})`);
      }
      const prev = this.acks[i].append;
      if (prev === undefined || term > prev.term || (term === prev.term && index > prev.index)) this.acks[i].append = { term, index };
    }
  }

  /**
   * Every node's Raft state was wiped with every controller at `height`: terms start again, and
   * whatever was committed above `height` (and lost by the controllers) is given up, as in the
   * rollback that precedes such a wipe.
   */
  onWipeAll(height: number): void {
    this.leaders = new Map();
    for (const m of [this.proposals, this.hashes]) for (const h of [...m.keys()]) if (h > height) m.delete(h);
    for (const m of [...this.lostAt, ...this.lostBlocks, ...this.committedAt]) for (const h of [...m.keys()]) if (h > height) m.delete(h);
  }

  /** After every step: Raft roles and queue bounds of the running nodes. */
  checkNodes(nodes: readonly (ConsensusNode | undefined)[]): void {
    for (let i = 0; i < nodes.length; i++) {
      const node = nodes[i];
      if (node === undefined) continue;
      const t = node.transport;
      if (t.queued > t.maxQueued) this.fail("queue bounds", `${this.names[i]}: transport queue ${t.queued} > ${t.maxQueued}`);
      if (t.mailbook.size > t.mailbook.capacity) this.fail("queue bounds", `${this.names[i]}: mailbook ${t.mailbook.size} > ${t.mailbook.capacity}`);
      const origins = t.trackedOrigins;
      if (origins.size > origins.capacity) this.fail("queue bounds", `${this.names[i]}: tracked origins ${origins.size} > ${origins.capacity}`);
      const peer = node.peer;
      if (peer === undefined) continue;
      const raft = peer.node.raft;
      if (peer.status().committerQueued > MAX_QUEUED_ENTRIES) {
        this.fail("queue bounds", `${this.names[i]}: committer holds ${peer.status().committerQueued} entries > ${MAX_QUEUED_ENTRIES}`);
      }
      if (raft.state === StateRole.Leader) {
        const known = this.leaders.get(raft.term);
        if (known === undefined) this.leaders.set(raft.term, raft.id);
        else if (known !== raft.id) this.fail("one leader per term", `${this.names[i]} (${raft.id}) leads term ${raft.term}, which ${known} led`);
      }
    }
  }

  /**
   * Before node `i` steps `m`: if `m` is an append rejection that raft-rs 0.7 calls stale, the
   * leader's progress of its sender (the rule of the core-level simulator, staleRejectionBefore).
   */
  staleRejection(node: ConsensusNode | undefined, m: Message): StaleRejection | undefined {
    return staleRejectionBefore(node?.peer?.node, m);
  }

  /** After node `i` stepped a stale rejection: the leader's progress of the sender is as it was. */
  checkStaleRejection(i: number, node: ConsensusNode | undefined, m: Message, before: StaleRejection): void {
    const moved = staleRejectionActedOn(node?.peer?.node, m, before);
    if (moved !== undefined) this.fail("stale rejection ignored", `leader ${this.names[i]} of term ${before.term} ${moved}`);
  }
}
