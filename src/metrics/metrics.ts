// Prometheus metrics: the Rust service's per-caller gRPC latency histograms (`<client-name>_to_<Method>`,
// milliseconds, buckets from `metrics_buckets`) plus the consensus state the Rust service never
// exported (term, role, leader, commit/applied index, height, proposals, elections, transfers,
// commit latency) and the process's memory. A private registry: no default Node/Bun collectors (on Bun some of them block
// the event loop on every scrape, for time that grows with the heap). Names follow Prometheus
// conventions (`promtool check metrics` is clean) except the `<client-name>_to_<Method>`
// histograms, kept as the Rust service named them for existing dashboards.
import type { Interceptor } from "@connectrpc/connect";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { memoryFigures } from "./memory.ts";

/** What the state gauges read at scrape time. */
export interface ConsensusStateSource {
  (): {
    raftRunning: boolean;
    term: number;
    role: number;
    leaderHex: string;
    commit: number;
    applied: number;
    lastIndex: number;
    height: bigint;
    committerBacklog: number;
    blockIntervalSeconds: number;
    /** Voters of the Raft configuration (its incoming half during a joint one). */
    voters: number;
    /** How long this node has known no leader (0 while it knows one), seconds. */
    leaderlessSeconds: number;
    /** Since this node last committed a block (or since its Raft peer started), seconds. */
    lastBlockAgeSeconds: number;
  } | undefined;
}

const METRIC_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Distinct `<client-name>_to_<Method>` histograms; client names come from callers, so they are bounded. */
export const MAX_CALL_HISTOGRAMS = 64;

interface QueueGauge {
  readonly depth: () => number;
  readonly capacity: number;
}

export class ConsensusMetrics {
  readonly registry = new Registry();
  private readonly callLatency = new Map<string, Histogram>();
  private readonly skippedNames = new Set<string>();
  readonly proposals: Counter;
  readonly blocksCommitted: Counter;
  readonly blocksRecommitted: Counter;
  readonly elections: Counter;
  readonly leaderChanges: Counter;
  readonly leaderTransfers: Counter<"reason">;
  readonly commitLatency: Histogram;
  readonly peerMsgsDropped: Counter<"reason">;
  readonly mailbookChanges: Counter<"result">;
  readonly networkFailures: Counter<"call">;
  readonly grpcRefused: Counter<"reason">;
  /** Configured minimum election timeout (election_tick × tick_interval_in_millis), seconds. */
  readonly electionTimeout: Gauge;
  private servingNow: () => boolean = () => false;
  private readonly queues = new Map<string, QueueGauge>();

  constructor(
    private readonly buckets: readonly number[],
    state: ConsensusStateSource,
    onWarn: (msg: string, fields: Record<string, unknown>) => void = () => {},
  ) {
    this.warn = onWarn;
    const r = [this.registry];
    const gauge = (name: string, help: string, read: (s: NonNullable<ReturnType<ConsensusStateSource>>) => number) =>
      new Gauge({
        name,
        help,
        registers: r,
        collect() {
          const s = state();
          this.set(s === undefined ? 0 : read(s));
        },
      });
    gauge("consensus_raft_running", "1 while this node runs a Raft peer (it is, or recently was, a validator)", (s) => (s.raftRunning ? 1 : 0));
    gauge("consensus_term", "current Raft term", (s) => s.term);
    gauge("consensus_role", "Raft role: 0 follower, 1 candidate, 2 leader, 3 pre-candidate", (s) => s.role);
    gauge("consensus_is_leader", "1 while this node is the Raft leader", (s) => (s.role === 2 ? 1 : 0));
    gauge("consensus_commit_index", "Raft commit index", (s) => s.commit);
    gauge("consensus_applied_index", "Raft index applied (block committed by the controller)", (s) => s.applied);
    gauge("consensus_last_index", "last index of the Raft log", (s) => s.lastIndex);
    gauge("consensus_block_height", "chain height of the applied configuration", (s) => Number(s.height));
    gauge("consensus_commit_backlog", "committed entries waiting for the controller", (s) => s.committerBacklog);
    gauge("consensus_voters", "voters in the Raft configuration (the incoming half of a joint one)", (s) => s.voters);
    gauge("consensus_block_interval_seconds", "block interval of the applied chain configuration", (s) => s.blockIntervalSeconds);
    gauge("consensus_leaderless_seconds", "how long this node has known no Raft leader (0 while it knows one)", (s) => s.leaderlessSeconds);
    gauge(
      "consensus_last_block_age_seconds",
      "time since this node last committed a block to its controller (since its Raft peer started if none yet)",
      (s) => s.lastBlockAgeSeconds,
    );
    const serving = () => this.servingNow();
    new Gauge({
      name: "consensus_serving",
      help: "1 while the gRPC health check answers SERVING",
      registers: r,
      collect() {
        this.set(serving() ? 1 : 0);
      },
    });
    this.electionTimeout = new Gauge({
      name: "consensus_election_timeout_seconds",
      help: "configured election timeout (election_tick x tick_interval_in_millis); Raft randomises it up to twice this",
      registers: r,
    });
    new Gauge({
      name: "consensus_leader",
      help: "the current leader's Raft id (hex) as a label, value 1",
      labelNames: ["leader"],
      registers: r,
      collect() {
        this.reset();
        const s = state();
        if (s !== undefined && s.leaderHex !== "") this.set({ leader: s.leaderHex }, 1);
      },
    });
    this.proposals = new Counter({ name: "consensus_proposals_total", help: "blocks proposed to Raft by this node as leader", registers: r });
    this.blocksCommitted = new Counter({ name: "consensus_blocks_committed_total", help: "blocks committed to the local controller", registers: r });
    this.blocksRecommitted = new Counter({
      name: "consensus_blocks_recommitted_total",
      help: "blocks committed again to the local controller after it lost them (no WAL, power loss)",
      registers: r,
    });
    this.elections = new Counter({ name: "consensus_elections_total", help: "elections this node started (pre-vote rounds included)", registers: r });
    this.leaderChanges = new Counter({ name: "consensus_leader_changes_total", help: "times this node saw a new leader", registers: r });
    this.leaderTransfers = new Counter({
      name: "consensus_leader_transfers_total",
      help: "leadership transfers this node started, by reason",
      labelNames: ["reason"],
      registers: r,
    });
    this.commitLatency = new Histogram({
      name: "consensus_commit_latency_seconds",
      help: "from a committed Raft entry to the controller's CommitBlock success",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: r,
    });
    this.peerMsgsDropped = new Counter({
      name: "consensus_peer_msgs_dropped_total",
      help: "inbound peer messages dropped, by reason (rate_limited, misdirected, origin_mismatch, not_member, from_self, unexpected_type, zero_term, not_validator)",
      labelNames: ["reason"],
      registers: r,
    });
    this.mailbookChanges = new Counter({
      name: "consensus_mailbook_rebinds_total",
      help: "attempts to move a known peer id to another network origin, by result (rebound, refused)",
      labelNames: ["result"],
      registers: r,
    });
    this.networkFailures = new Counter({
      name: "consensus_network_failures_total",
      help: "calls to the network service that failed (each loses its message), by call (sendMsg, broadcast)",
      labelNames: ["call"],
      registers: r,
    });
    this.grpcRefused = new Counter({
      name: "consensus_grpc_refused_total",
      help: "gRPC calls refused with RESOURCE_EXHAUSTED before their request was read, by reason (too_large, busy, byte_budget)",
      labelNames: ["reason"],
      registers: r,
    });
    new Gauge({
      name: "consensus_memory_bytes",
      help: "memory of this process, by area: rss, rss_peak, heap_used and heap_total (the JS heap), external and array_buffers (held outside the JS heap by JS objects)",
      labelNames: ["area"],
      registers: r,
      collect() {
        for (const [area, bytes] of Object.entries(memoryFigures())) this.set({ area }, bytes);
      },
    });
    const queues = this.queues;
    new Gauge({
      name: "consensus_queue_depth",
      help: "current size of each bounded queue or cache of the service",
      labelNames: ["queue"],
      registers: r,
      collect() {
        for (const [queue, q] of queues) this.set({ queue }, q.depth());
      },
    });
    new Gauge({
      name: "consensus_queue_capacity",
      help: "bound of each queue or cache in consensus_queue_depth",
      labelNames: ["queue"],
      registers: r,
      collect() {
        for (const [queue, q] of queues) this.set({ queue }, q.capacity);
      },
    });
  }

  /** What consensus_serving reads at scrape time. */
  serving(read: () => boolean): void {
    this.servingNow = read;
  }

  /** Registers a bounded queue or cache; its depth is read at scrape time. */
  queue(name: string, depth: () => number, capacity: number): void {
    this.queues.set(name, { depth, capacity });
  }

  private readonly warn: (msg: string, fields: Record<string, unknown>) => void;

  /** Records one served call as the Rust service does: only calls that carry a valid `client-name`. */
  observeCall(clientName: string | null, method: string, ms: number): void {
    if (!clientName) return;
    const name = `${clientName}_to_${method}`;
    let h = this.callLatency.get(name);
    if (h === undefined) {
      const tooMany = this.callLatency.size >= MAX_CALL_HISTOGRAMS;
      if (tooMany || !METRIC_NAME.test(name)) {
        // Remember a bounded number of skipped names, just to warn once for each.
        if (!this.skippedNames.has(name) && this.skippedNames.size < MAX_CALL_HISTOGRAMS) {
          this.skippedNames.add(name);
          this.warn(tooMany ? "too many client names; call not measured" : "client-name is not usable in a metric name; call not measured", {
            client_name: clientName,
          });
        }
        return;
      }
      h = new Histogram({ name, help: "request latencies in milliseconds(ms)", buckets: [...this.buckets], registers: [this.registry] });
      this.callLatency.set(name, h);
    }
    h.observe(ms);
  }

  /** A Connect server interceptor that times every call. */
  interceptor(): Interceptor {
    return (next) => async (req) => {
      const started = performance.now();
      try {
        return await next(req);
      } finally {
        this.observeCall(req.header.get("client-name"), req.method.name, performance.now() - started);
      }
    };
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
