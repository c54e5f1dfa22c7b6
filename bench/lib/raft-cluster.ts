// Three RawNodes in one process, each over MemStorage, joined by an in-memory bus and driven
// round-robin by one loop: the TS twin of the etcd anchor harness
// (../shared/anchors/etcd/B/raftcore/main.go, "single" mode). Bootstrap, config, Ready loop,
// workloads, timing points and end-of-run verification follow that file step by step so that
// the two sets of figures are comparable.
import { RaftError, StateRole, RawNode, MemStorage, EMPTY_BYTES, type Entry, EntryType, type Message, NONE, type NodeId, newConfState, newSnapshot, codec } from "../../src/raft/index.ts";

/** etcd 3.4 etcdserver/raft.go, as in the anchor. */
const MAX_SIZE_PER_MSG = 1024 * 1024;
const MAX_INFLIGHT_MSGS = 4096 / 8;
const PEERS: NodeId[] = [1n, 2n, 3n];

/** FNV-64 prime: the anchor's checksum is `sum = sum*P ^ le64(data[0:8])` in uint64. */
const FNV_LO = 0x1b3; // P = 2^40 + 0x1b3
const TWO32 = 4294967296;

class Node {
  readonly rn: RawNode;
  readonly st: MemStorage;
  state = StateRole.Follower;
  lead: NodeId = NONE;
  inbox: Message[] = [];
  private spare: Message[] = [];
  commit = 1;
  applied = 1;
  appliedData = 0;
  // Order-sensitive uint64 checksum over applied payloads, kept as two uint32 halves.
  sumHi = 0;
  sumLo = 0;
  msgsSent = 0;

  constructor(readonly id: NodeId) {
    this.st = new MemStorage();
    // The recommended bootstrap: a snapshot at index 1 holding the initial voters.
    this.st.applySnapshot(newSnapshot(1, 1, newConfState({ voters: PEERS.slice() })));
    this.st.setHardState({ term: 1, vote: NONE, commit: 1 });
    this.rn = new RawNode(
      {
        id,
        electionTick: 10,
        heartbeatTick: 1,
        applied: 1,
        maxSizePerMsg: MAX_SIZE_PER_MSG,
        maxInflightMsgs: MAX_INFLIGHT_MSGS,
        checkQuorum: true,
        preVote: true,
      },
      this.st,
    );
  }

  /** Steps everything queued for this node; returns how many messages it stepped. */
  stepInbox(): number {
    const msgs = this.inbox;
    if (msgs.length === 0) return 0;
    this.inbox = this.spare;
    for (let i = 0; i < msgs.length; i++) {
      try {
        this.rn.step(msgs[i]);
      } catch (e) {
        // The anchor tolerates only ErrStepPeerNotFound.
        if (!(e instanceof RaftError && e.kind === "StepPeerNotFound")) throw e;
      }
    }
    const n = msgs.length;
    msgs.length = 0;
    this.spare = msgs;
    return n;
  }

  applyEntries(ents: Entry[]): void {
    for (let i = 0; i < ents.length; i++) {
      const e = ents[i];
      if (e.entryType === EntryType.EntryNormal) {
        const d = e.data;
        if (d.length > 0) {
          this.appliedData++;
          this.mixChecksum(d);
        }
      } else if (e.entryType === EntryType.EntryConfChangeV2) {
        this.st.setConfState(this.rn.applyConfChange(codec.decodeConfChangeV2(e.data)));
      } else {
        throw new Error(`unexpected ${EntryType[e.entryType]} at index ${e.index}`);
      }
      this.applied = e.index;
    }
  }

  private mixChecksum(d: Uint8Array): void {
    // sum * (2^40 + 0x1b3) mod 2^64, then xor the payload's little-endian first 8 bytes.
    const lo = this.sumLo;
    const loMul = lo * FNV_LO; // < 2^41: exact in a double
    const carry = Math.floor(loMul / TWO32);
    const newHi = (Math.imul(this.sumHi, FNV_LO) + carry + (lo << 8)) >>> 0;
    const newLo = loMul >>> 0;
    const vLo = (d[0] | (d[1] << 8) | (d[2] << 16) | (d[3] << 24)) >>> 0;
    const vHi = (d[4] | (d[5] << 8) | (d[6] << 16) | (d[7] << 24)) >>> 0;
    this.sumLo = (newLo ^ vLo) >>> 0;
    this.sumHi = (newHi ^ vHi) >>> 0;
  }

  checksum(): string {
    return this.sumHi.toString(16).padStart(8, "0") + this.sumLo.toString(16).padStart(8, "0");
  }
}

export class Cluster {
  readonly nodes: Node[];

  constructor(readonly marshal: boolean) {
    this.nodes = PEERS.map((id) => new Node(id));
  }

  private deliver(msgs: Message[]): void {
    for (let i = 0; i < msgs.length; i++) {
      const m = this.marshal ? codec.decodeMessage(codec.encodeMessage(msgs[i])) : msgs[i];
      this.nodes[Number(m.to) - 1].inbox.push(m);
    }
  }

  /** One iteration of the standard Ready loop: persist, send, apply, advance. */
  private handleReady(n: Node): boolean {
    const rn = n.rn;
    if (!rn.hasReady()) return false;
    const rd = rn.ready();
    if (rd.softState) {
      n.state = rd.softState.raftState;
      n.lead = rd.softState.leaderId;
    }
    if (rd.snapshot) n.st.applySnapshot(rd.snapshot);
    if (rd.entries.length > 0) n.st.append(rd.entries);
    if (rd.hardState) {
      n.st.setHardState(rd.hardState);
      n.commit = rd.hardState.commit;
    }
    // Memory storage is durable at once: both kinds of messages leave now.
    this.deliver(rd.messages);
    this.deliver(rd.persistedMessages);
    n.msgsSent += rd.messages.length + rd.persistedMessages.length;
    n.applyEntries(rd.committedEntries);
    const light = rn.advance(rd);
    if (light.commitIndex !== undefined) {
      n.st.setCommit(light.commitIndex);
      n.commit = light.commitIndex;
    }
    this.deliver(light.messages);
    n.msgsSent += light.messages.length;
    n.applyEntries(light.committedEntries);
    rn.advanceApply();
    return true;
  }

  /** One round-robin pass over all nodes; whether anything happened. */
  pumpOnce(): boolean {
    let busy = false;
    for (const n of this.nodes) {
      if (n.stepInbox() > 0) busy = true;
      if (this.handleReady(n)) busy = true;
    }
    return busy;
  }

  pumpUntilIdle(): void {
    while (this.pumpOnce()) {}
  }

  /**
   * Ticks node 1 (only node 1, only as needed) until it leads and its term's empty entry is
   * applied on every node. Returns the number of ticks.
   */
  elect(): number {
    const l = this.nodes[0];
    for (let ticks = 0; ticks <= 1000; ticks++) {
      this.pumpUntilIdle();
      if (l.state === StateRole.Leader) {
        const last = l.st.lastIndex();
        if (l.commit === last && this.nodes[1].applied === last && this.nodes[2].applied === last) return ticks;
      }
      l.rn.tick();
    }
    throw new Error("no settled leader after 1000 ticks");
  }

  /** W1b: propose one entry, pump until the leader applied it, repeat. Latencies in ns. */
  sequential(data: Uint8Array[]): Float64Array {
    const l = this.nodes[0];
    const lat = new Float64Array(data.length);
    let next = l.st.lastIndex();
    for (let i = 0; i < data.length; i++) {
      next++;
      const t0 = Bun.nanoseconds();
      l.rn.propose(EMPTY_BYTES, data[i]);
      while (l.applied < next) {
        if (!this.pumpOnce()) throw new Error(`stalled at entry ${next}`);
      }
      lat[i] = Bun.nanoseconds() - t0;
    }
    return lat;
  }

  /** W1a: up to `batch` proposals per loop pass until all are proposed; times in ns from the first proposal. */
  pipelined(data: Uint8Array[], batch: number): { leaderCommit: number; leaderApplied: number; allApplied: number } {
    const l = this.nodes[0];
    const [f1, f2] = [this.nodes[1], this.nodes[2]];
    const target = l.st.lastIndex() + data.length;
    let leaderCommit = 0;
    let leaderApplied = 0;
    let proposed = 0;
    const t0 = Bun.nanoseconds();
    for (;;) {
      if (proposed < data.length) {
        const k = Math.min(batch, data.length - proposed);
        for (let j = 0; j < k; j++) l.rn.propose(EMPTY_BYTES, data[proposed++]);
      }
      const busy = this.pumpOnce();
      if (leaderCommit === 0 && l.commit >= target) leaderCommit = Bun.nanoseconds() - t0;
      if (leaderApplied === 0 && l.applied >= target) leaderApplied = Bun.nanoseconds() - t0;
      if (l.applied >= target && f1.applied >= target && f2.applied >= target) {
        return { leaderCommit, leaderApplied, allApplied: Bun.nanoseconds() - t0 };
      }
      if (!busy && proposed === data.length) throw new Error(`stalled: leader applied ${l.applied} of ${target}`);
    }
  }

  /** Every node applied the same last index, entry count and checksum; node 1 led throughout. */
  verify(expectData: number): void {
    const l = this.nodes[0];
    const last = l.st.lastIndex();
    for (const n of this.nodes) {
      if (n.applied !== last || n.appliedData !== expectData || n.checksum() !== l.checksum()) {
        throw new Error(
          `verify failed on node ${n.id}: applied=${n.applied} last=${last} data=${n.appliedData}/${expectData} sum=${n.checksum()}/${l.checksum()}`,
        );
      }
    }
    if (l.state !== StateRole.Leader || this.nodes[1].lead !== 1n || this.nodes[2].lead !== 1n) {
      throw new Error("verify failed: leadership changed during the run");
    }
  }

  messagesSent(): number {
    let s = 0;
    for (const n of this.nodes) s += n.msgsSent;
    return s;
  }

  term(): number {
    return this.nodes[0].rn.raft.term;
  }
}

/** `n` payloads of `size` bytes (at least 8) carved from one buffer, as the anchor builds them. */
export function payloads(n: number, size: number, base: number): Uint8Array[] {
  size = Math.max(size, 8);
  const buf = new Uint8Array(n * size);
  const view = new DataView(buf.buffer);
  const out: Uint8Array[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const off = i * size;
    const v = base + i + 1; // < 2^53: written as two little-endian uint32 halves
    view.setUint32(off, v % 4294967296, true);
    view.setUint32(off + 4, Math.floor(v / 4294967296), true);
    for (let j = 8; j < size; j++) buf[off + j] = (i + j) & 0xff;
    out[i] = buf.subarray(off, off + size);
  }
  return out;
}

/** The anchor's percentile: the value at rank round(p% of n), 1-based, clamped. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.floor((p / 100) * sorted.length + 0.5) - 1));
  return sorted[i];
}

export interface RunOptions {
  workload: "w1a" | "w1b";
  n: number;
  size: number;
  batch: number;
  warmup: number;
  marshal: boolean;
}

/** One measured run in a fresh cluster, with the anchor's field names. Throws if verification fails. */
export function runOnce(o: RunOptions): Record<string, unknown> {
  const c = new Cluster(o.marshal);
  const ticks = c.elect();
  c.sequential(payloads(o.warmup, o.size, 2 ** 40));
  const data = payloads(o.n, o.size, 0);
  Bun.gc(true);
  const res: Record<string, unknown> = {
    impl: "ts",
    workload: o.workload,
    mode: "single",
    n: o.n,
    size: o.size,
    marshal: o.marshal,
    election_ticks: ticks,
    term: c.term(),
    bun: Bun.version,
  };
  // CPU time of the measured section (all threads, GC included): steadier than wall time on a busy machine.
  const cpu0 = process.cpuUsage();
  if (o.workload === "w1a") {
    const r = c.pipelined(data, o.batch);
    res.batch = o.batch;
    res.leader_commit_ms = r.leaderCommit / 1e6;
    res.leader_applied_ms = r.leaderApplied / 1e6;
    res.all_applied_ms = r.allApplied / 1e6;
    res.leader_commits_per_s = o.n / (r.leaderCommit / 1e9);
    res.all_applied_per_s = o.n / (r.allApplied / 1e9);
  } else {
    const t0 = Bun.nanoseconds();
    const lat = c.sequential(data);
    const el = Bun.nanoseconds() - t0;
    c.pumpUntilIdle(); // let the followers apply the last commit index
    lat.sort();
    let sum = 0;
    for (const d of lat) sum += d;
    res.elapsed_ms = el / 1e6;
    res.commits_per_s = lat.length / (el / 1e9);
    res.p50_us = percentile(lat, 50) / 1e3;
    res.p90_us = percentile(lat, 90) / 1e3;
    res.p99_us = percentile(lat, 99) / 1e3;
    res.max_us = percentile(lat, 100) / 1e3;
    res.mean_us = sum / lat.length / 1e3;
  }
  const cpu = process.cpuUsage(cpu0);
  res.cpu_ms = (cpu.user + cpu.system) / 1e3;
  c.pumpUntilIdle();
  c.verify(o.warmup + o.n);
  res.messages_total = c.messagesSent();
  res.heap_mb = process.memoryUsage().heapUsed / (1 << 20);
  res.verified = true;
  return res;
}
