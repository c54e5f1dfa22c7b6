// The world an interaction script runs in: RawNodes over MemStorage, one shared outbox of messages
// in flight, and an output buffer that collects what the script asserts (Ready contents, messages,
// the core's log lines). Each node runs the raft-rs Ready loop exactly as an application must:
// send `messages` at once, persist snapshot, entries and hard state, then send
// `persistedMessages`, apply committed entries (conf changes through applyConfChange), advance,
// handle the LightReady, advanceApply.
import { decodeConfChangeV2 } from "../../../src/raft/codec.ts";
import { NO_LIMIT, type RaftConfig } from "../../../src/raft/config.ts";
import { RaftError } from "../../../src/raft/errors.ts";
import type { RaftLogger } from "../../../src/raft/logger.ts";
import { RawNode } from "../../../src/raft/raw-node.ts";
import { MemStorage, cloneConfState } from "../../../src/raft/storage.ts";
import { type ConfState, type Entry, EntryType, type Message, type NodeId } from "../../../src/raft/types.ts";
import type { Arg } from "./datadriven.ts";
import { describeLightReady, describeMessage, describeReady } from "./format.ts";

export const LOG_LEVELS = ["debug", "info", "warn", "error", "none"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Collects a directive's output; nested steps (a node handling a Ready inside stabilize) are
 * indented. `level` filters the core's log lines; at "none" nothing at all is printed, which keeps
 * the set-up part of a script quiet.
 */
export class Output {
  private lines: string[] = [];
  private indent = "";
  level: LogLevel = "info";

  write(line: string): void {
    if (this.level === "none") return;
    this.lines.push(this.indent + line);
  }

  writeAll(lines: string[]): void {
    for (const l of lines) this.write(l);
  }

  indented<T>(f: () => T): T {
    const old = this.indent;
    this.indent += "  ";
    try {
      return f();
    } finally {
      this.indent = old;
    }
  }

  /** The collected output, cleared. */
  take(): string {
    const s = this.lines.length > 0 ? this.lines.join("\n") + "\n" : "";
    this.lines = [];
    this.indent = "";
    return s;
  }

  enabled(level: LogLevel): boolean {
    return LOG_LEVELS.indexOf(level) >= LOG_LEVELS.indexOf(this.level);
  }
}

function fieldValue(v: unknown): string {
  if (v instanceof Uint8Array) return JSON.stringify(new TextDecoder().decode(v));
  if (typeof v === "string") return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return String(v);
}

/** The core's log lines as `INFO 1 became leader term=1`: level, node, message, then the fields. */
function scriptLogger(out: Output, id: NodeId): RaftLogger {
  const line = (level: Exclude<LogLevel, "none">) => (msg: string, fields?: Record<string, unknown>) => {
    if (!out.enabled(level)) return;
    let s = `${level.toUpperCase()} ${id} ${msg}`;
    for (const [k, v] of Object.entries(fields ?? {})) if (k !== "raft_id") s += ` ${k}=${fieldValue(v)}`;
    out.write(s);
  };
  return { debug: line("debug"), info: line("info"), warn: line("warn"), error: line("error") };
}

/**
 * MemStorage whose snapshot is always the state machine as of the node's applied index: asked for
 * a snapshot, the application takes a fresh one first (the log stays; `compact` drops it). This is
 * what a real application behind Storage.snapshot does, and what raft-rs's test MemStorage imitates.
 */
export class ScriptStorage extends MemStorage {
  node: Node | undefined;

  override snapshot(requestIndex: number, to: NodeId) {
    const n = this.node;
    if (n !== undefined && n.applied > this.snap.metadata.index) this.createSnapshot(n.applied, n.confStateAt(n.applied), new Uint8Array());
    return super.snapshot(requestIndex, to);
  }
}

/** One member of the scripted cluster: its RawNode, its storage and what it has applied. */
export class Node {
  /** The configuration in force after each applied index at which it changed (for snapshots). */
  readonly confHistory: [number, ConfState][] = [];
  applied = 0;
  /** Asynchronous writes: a Ready's writes become durable only on `persist`. */
  asyncWrites = false;
  /** Readies written but not yet durable (asynchronous writes), with the messages that wait for them. */
  inFlight: { number: number; msgs: Message[] }[] = [];

  constructor(
    readonly id: NodeId,
    readonly store: ScriptStorage,
    public raw: RawNode,
    readonly config: RaftConfig,
  ) {
    store.node = this;
    const snap = store.snap.metadata;
    this.applied = snap.index;
    this.confHistory.push([snap.index, cloneConfState(snap.confState)]);
  }

  /** The configuration that was in force once `index` was applied. */
  confStateAt(index: number): ConfState {
    let cs = this.confHistory[0][1];
    for (const [i, c] of this.confHistory) if (i <= index) cs = c;
    return cs;
  }
}

/** Settings of add-nodes; the defaults keep traces short: elections after 3 ticks, heartbeats every tick. */
export function nodeConfig(args: Arg[]): Omit<RaftConfig, "id" | "logger"> {
  const cfg: Omit<RaftConfig, "id" | "logger"> = {
    electionTick: 3,
    heartbeatTick: 1,
    maxSizePerMsg: NO_LIMIT,
    maxInflightMsgs: 256,
    // A fixed random source: the randomized election timeout is always exactly electionTick, so
    // tick-election makes a follower campaign.
    random: () => 0,
  };
  for (const a of args) {
    const v = a.vals[0];
    switch (a.key) {
      case "prevote":
        cfg.preVote = v === "true";
        break;
      case "checkquorum":
        cfg.checkQuorum = v === "true";
        break;
      case "inflight":
        cfg.maxInflightMsgs = Number(v);
        break;
      case "max-size-per-msg":
        cfg.maxSizePerMsg = Number(v);
        break;
      case "election-tick":
        cfg.electionTick = Number(v);
        break;
      case "heartbeat-tick":
        cfg.heartbeatTick = Number(v);
        break;
    }
  }
  return cfg;
}

export class InteractionEnv {
  readonly out = new Output();
  /** Nodes by id (ids start at 1 and are handed out in order). */
  readonly nodes: Node[] = [];
  /** Messages sent and not yet delivered or dropped, in sending order. */
  messages: Message[] = [];

  node(id: NodeId | number): Node {
    const n = this.nodes[Number(id) - 1];
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  addNode(store: ScriptStorage, cfg: Omit<RaftConfig, "id" | "logger">, asyncWrites = false): Node {
    const id = BigInt(this.nodes.length + 1);
    const config: RaftConfig = { ...cfg, id, applied: store.snap.metadata.index, logger: scriptLogger(this.out, id) };
    const n = new Node(id, store, new RawNode(config, store), config);
    n.asyncWrites = asyncWrites;
    this.nodes.push(n);
    return n;
  }

  /** Runs `f` and prints a RaftError it throws (a refused proposal, say) instead of failing. */
  report(f: () => void): void {
    try {
      f();
    } catch (e) {
      if (!(e instanceof RaftError)) throw e;
      this.out.write(`error: ${e.message}`);
    }
  }

  /** Handles one Ready of `n` by the raft-rs rules, printing it and the LightReady of advance(). */
  processReady(n: Node): void {
    const raw = n.raw;
    if (!raw.hasReady()) {
      this.out.write("<no Ready>");
      return;
    }
    const rd = raw.ready();
    this.out.writeAll(describeReady(rd));
    this.messages.push(...rd.messages);
    if (rd.snapshot !== undefined) {
      n.store.applySnapshot(rd.snapshot);
      n.applied = rd.snapshot.metadata.index;
      n.confHistory.push([n.applied, cloneConfState(rd.snapshot.metadata.confState)]);
    }
    n.store.append(rd.entries);
    if (rd.hardState !== undefined) n.store.setHardState(rd.hardState);
    if (n.asyncWrites) {
      // Written (storage reads see it) but not durable: acks and votes wait for `persist`. There
      // is no LightReady in this mode; what becomes possible later comes in a later Ready.
      n.inFlight.push({ number: rd.number, msgs: rd.persistedMessages });
      this.out.write(`(Ready ${rd.number} written, not yet durable)`);
      this.apply(n, rd.committedEntries);
      raw.advanceAppendAsync(rd);
      raw.advanceApply();
      return;
    }
    // Durable now: acks and votes may leave.
    this.messages.push(...rd.persistedMessages);
    this.apply(n, rd.committedEntries);
    const light = raw.advance(rd);
    this.out.writeAll(describeLightReady(light));
    if (light.commitIndex !== undefined) n.store.setCommit(light.commitIndex);
    this.messages.push(...light.messages);
    this.apply(n, light.committedEntries);
    raw.advanceApply();
  }

  private apply(n: Node, ents: Entry[]): void {
    for (const e of ents) {
      if (e.entryType === EntryType.EntryConfChangeV2) {
        const cs = n.raw.applyConfChange(decodeConfChangeV2(e.data));
        n.store.setConfState(cs);
        n.confHistory.push([e.index, cloneConfState(cs)]);
      } else if (e.entryType !== EntryType.EntryNormal) {
        throw new Error(`node ${n.id} cannot apply ${EntryType[e.entryType]} at ${e.index}`);
      }
      n.applied = e.index;
    }
  }

  /**
   * Asynchronous writes: every Ready of `n` up to `upTo` (all by default) is durable. Their
   * waiting messages are sent and the node is told with onPersistReady.
   */
  persist(n: Node, upTo = Number.MAX_SAFE_INTEGER): void {
    const done = n.inFlight.filter((r) => r.number <= upTo);
    if (done.length === 0) {
      this.out.write("nothing to persist");
      return;
    }
    n.inFlight = n.inFlight.filter((r) => r.number > upTo);
    const last = done[done.length - 1].number;
    this.out.write(`Ready ${last} durable${done.length > 1 ? ` (and ${done.map((r) => r.number).slice(0, -1).join(", ")} before it)` : ""}`);
    for (const r of done) {
      for (const m of r.msgs) this.out.write(describeMessage(m));
      this.messages.push(...r.msgs);
    }
    n.raw.onPersistReady(last);
  }

  /** Takes the messages to `to` out of the outbox (keeping their order), optionally of one type. */
  private take(to: NodeId, type: number | undefined): Message[] {
    const mine: Message[] = [];
    const rest: Message[] = [];
    for (const m of this.messages) (m.to === to && (type === undefined || m.msgType === type) ? mine : rest).push(m);
    this.messages = rest;
    return mine;
  }

  hasMessagesFor(to: NodeId): boolean {
    return this.messages.some((m) => m.to === to);
  }

  /** Steps every queued message to `to` into it (or drops them), printing each; returns how many. */
  deliver(to: NodeId, drop: boolean, type?: number): number {
    const msgs = this.take(to, type);
    for (const m of msgs) {
      this.out.write((drop ? "dropped: " : "") + describeMessage(m));
      if (drop) continue;
      const n = this.nodes[Number(to) - 1];
      if (n === undefined) {
        this.out.write(`  (no node ${to}: lost)`);
        continue;
      }
      this.report(() => n.raw.step(m));
    }
    return msgs.length;
  }

  /** Handles Readies, delivers messages among `ids` and completes their writes until nothing moves. */
  stabilize(ids: NodeId[]): void {
    const nodes = ids.length > 0 ? ids.map((id) => this.node(id)) : this.nodes;
    for (let round = 0; ; round++) {
      if (round > 1000) throw new Error("stabilize: no fixed point after 1000 rounds");
      let done = true;
      for (const n of nodes) {
        if (!n.raw.hasReady()) continue;
        this.out.write(`> ${n.id} handling Ready`);
        this.out.indented(() => this.processReady(n));
        done = false;
      }
      for (const n of nodes) {
        if (!this.hasMessagesFor(n.id)) continue;
        this.out.write(`> ${n.id} receiving messages`);
        this.out.indented(() => this.deliver(n.id, false));
        done = false;
      }
      for (const n of nodes) {
        if (n.inFlight.length === 0) continue;
        this.out.write(`> ${n.id} persisting`);
        this.out.indented(() => this.persist(n));
        done = false;
      }
      if (done) return;
    }
  }
}
