// The recent history of a run, kept cheaply (a ring of small records, formatted only when a
// violation is reported), and a running digest of every event that proves bit-for-bit replay.
import { MessageType } from "../../src/raft/types.ts";
import type { Message } from "../../src/raft/types.ts";

interface TraceRecord {
  step: number;
  time: number;
  /** Lazily formatted description. */
  text: string | (() => string);
}

export class Trace {
  private ring: (TraceRecord | undefined)[];
  private next = 0;
  /** FNV-style digest over everything recorded. */
  digest = 0x811c9dc5;
  step = 0;
  time = 0;

  constructor(readonly capacity = 64) {
    this.ring = new Array(capacity);
  }

  add(text: string | (() => string)): void {
    this.ring[this.next] = { step: this.step, time: this.time, text };
    this.next = (this.next + 1) % this.capacity;
  }

  /** Folds numbers into the replay digest. */
  fold(a: number, b = 0, c = 0): void {
    let h = this.digest;
    h = Math.imul(h ^ a, 0x01000193);
    h = Math.imul(h ^ b, 0x01000193);
    h = Math.imul(h ^ c, 0x01000193);
    this.digest = h >>> 0;
  }

  /** The last `n` records, oldest first, one line each. */
  lines(n = 40): string[] {
    const out: string[] = [];
    for (let k = Math.min(n, this.capacity); k >= 1; k--) {
      const r = this.ring[(this.next - k + this.capacity * 2) % this.capacity];
      if (r === undefined) continue;
      const text = typeof r.text === "string" ? r.text : r.text();
      out.push(`#${r.step} t=${r.time} ${text}`);
    }
    return out;
  }
}

const SHORT: Partial<Record<MessageType, string>> = {
  [MessageType.MsgAppend]: "App",
  [MessageType.MsgAppendResponse]: "AppResp",
  [MessageType.MsgRequestVote]: "Vote",
  [MessageType.MsgRequestVoteResponse]: "VoteResp",
  [MessageType.MsgRequestPreVote]: "PreVote",
  [MessageType.MsgRequestPreVoteResponse]: "PreVoteResp",
  [MessageType.MsgHeartbeat]: "Heartbeat",
  [MessageType.MsgHeartbeatResponse]: "HeartbeatResp",
  [MessageType.MsgSnapshot]: "Snapshot",
  [MessageType.MsgPropose]: "Propose",
  [MessageType.MsgTimeoutNow]: "TimeoutNow",
  [MessageType.MsgTransferLeader]: "TransferLeader",
  [MessageType.MsgReadIndex]: "ReadIndex",
  [MessageType.MsgReadIndexResp]: "ReadIndexResp",
};

/** One readable line for a message, with only the fields that matter for its type. */
export function showMsg(m: Message): string {
  const t = SHORT[m.msgType] ?? MessageType[m.msgType];
  let s = `${t} ${m.from}->${m.to} t${m.term}`;
  switch (m.msgType) {
    case MessageType.MsgAppend: {
      s += ` prev=${m.index}/t${m.logTerm} commit=${m.commit}`;
      const n = m.entries.length;
      if (n > 0) s += ` ents=[${m.entries[0].index}..${m.entries[n - 1].index}]/t${m.entries[n - 1].term}`;
      break;
    }
    case MessageType.MsgAppendResponse:
      s += m.reject ? ` REJECT idx=${m.index} hint=${m.rejectHint}/t${m.logTerm}` : ` idx=${m.index}`;
      s += ` commit=${m.commit}`;
      break;
    case MessageType.MsgRequestVote:
    case MessageType.MsgRequestPreVote:
      s += ` last=${m.index}/t${m.logTerm}${m.context.length > 0 ? " transfer" : ""}`;
      break;
    case MessageType.MsgRequestVoteResponse:
    case MessageType.MsgRequestPreVoteResponse:
      s += m.reject ? " REJECT" : " GRANT";
      break;
    case MessageType.MsgHeartbeat:
    case MessageType.MsgHeartbeatResponse:
      s += ` commit=${m.commit}`;
      break;
    case MessageType.MsgSnapshot:
      s += ` snap=${m.snapshot?.metadata.index}/t${m.snapshot?.metadata.term}`;
      break;
    case MessageType.MsgPropose:
      s += ` ents=${m.entries.length}`;
      break;
  }
  return s;
}
