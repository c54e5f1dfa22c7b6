// Pending ReadIndex requests on the leader: each waits for a heartbeat round acknowledged by a
// quorum before its read index may be served (raft thesis §6.4, "Safe" read-only option).
import type { Message, NodeId } from "./types.ts";

export const enum ReadOnlyOption {
  /** Confirm leadership with a heartbeat round per request batch. */
  Safe = 0,
  /** Trust the leader lease (needs check_quorum and bounded clock drift). */
  LeaseBased = 1,
}

export interface ReadState {
  index: number;
  requestCtx: Uint8Array;
}

export interface ReadIndexStatus {
  req: Message;
  index: number;
  acks: Set<NodeId>;
}

/** Contexts are opaque bytes; use a string key so equal bytes map to one request. */
function key(ctx: Uint8Array): string {
  let s = "";
  for (let i = 0; i < ctx.length; i++) s += String.fromCharCode(ctx[i]);
  return s;
}

export class ReadOnly {
  private pending = new Map<string, ReadIndexStatus>();
  private queue: string[] = [];
  constructor(readonly option: ReadOnlyOption) {}

  addRequest(index: number, req: Message, self: NodeId): void {
    const k = key(req.entries[0].data);
    if (this.pending.has(k)) return;
    this.pending.set(k, { req, index, acks: new Set([self]) });
    this.queue.push(k);
  }

  /** Records a heartbeat ack for the request with this context; returns its ack set. */
  recvAck(id: NodeId, ctx: Uint8Array): Set<NodeId> | undefined {
    const rs = this.pending.get(key(ctx));
    if (!rs) return undefined;
    rs.acks.add(id);
    return rs.acks;
  }

  /** Completes the request with this context and every request queued before it. */
  advance(ctx: Uint8Array): ReadIndexStatus[] {
    const k = key(ctx);
    const pos = this.queue.indexOf(k);
    if (pos < 0) return [];
    const done = this.queue.splice(0, pos + 1);
    const out: ReadIndexStatus[] = [];
    for (const d of done) {
      const rs = this.pending.get(d);
      if (!rs) throw new Error("cannot find the corresponding read state from pending map");
      this.pending.delete(d);
      out.push(rs);
    }
    return out;
  }

  lastPendingRequestCtx(): Uint8Array | undefined {
    if (this.queue.length === 0) return undefined;
    return this.pending.get(this.queue[this.queue.length - 1])?.req.entries[0].data;
  }

  pendingReadCount(): number {
    return this.queue.length;
  }
}
