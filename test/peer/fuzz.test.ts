// Fuzzing the peer-message path with random and mutated bytes: what the gRPC server does with a
// ProcessNetworkMsg body (decode the NetworkMsg, validate the envelope), then the transport and the
// Raft peer, wired as in the service. At least 100,000 cases: mutations of valid NetworkMsg
// encodings and of valid eraftpb encodings inside a valid envelope, plus plain random bytes.
// Properties: nothing throws but the envelope's own typed refusal (INVALID_ARGUMENT on the wire),
// every case returns at once, input refused as undecodable changes no state at all (not even the
// mailbook), and the peer never fails or moves its term or commit backwards. FUZZ_SEED=<n> replays a run; FUZZ_CASES=<n> scales it.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as http2 from "node:http2";
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { ConsensusConfigurationSchema, ProposalSchema } from "../../gen/common_pb.ts";
import { ConfChangeType, ConfChangeV2Schema, EntryType, MessageSchema, MessageType } from "../../gen/eraftpb_pb.ts";
import { type NetworkMsg, NetworkMsgSchema } from "../../gen/network_pb.ts";
import { seededRng, type Rng } from "../../src/devchain/rng.ts";
import { encodeChainConfig } from "../../src/node/chain-config.ts";
import { EnvelopeError, parseEnvelope } from "../../src/peer/envelope.ts";
import { encodePeerId } from "../../src/peer/peer-id.ts";
import { codec } from "../../src/raft/index.ts";
import { createGrpcServer } from "../../src/rpc/server.ts";
import { captureLog } from "../support/capture-log.ts";
import { PeerRig } from "../support/peer-rig.ts";

const CASES = Number(process.env.FUZZ_CASES ?? 100_000);
/** Cases sent through a real server over HTTP/2 (each a call, so far fewer). */
const WIRE_CASES = Math.max(1, Math.round(CASES / 50));
const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));

// ---------------------------------------------------------------- mutations

const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x08, 0x0a, 0x12, 0x1a, 0x22];

function mutate(rng: Rng, seed: Uint8Array, corpus: readonly Uint8Array[]): Uint8Array {
  const int = (n: number) => Math.floor(rng() * n);
  let b: Uint8Array = Uint8Array.from(seed);
  for (let k = 1 + int(3); k > 0; k--) {
    const at = int(b.length + 1);
    switch (int(9)) {
      case 0: // flip a bit
        if (b.length > 0) b[int(b.length)]! ^= 1 << int(8);
        break;
      case 1: // an interesting byte
        if (b.length > 0) b[int(b.length)] = INTERESTING[int(INTERESTING.length)]!;
        break;
      case 2: // insert random bytes
        b = concat(b.subarray(0, at), Uint8Array.from({ length: 1 + int(8) }, () => int(256)), b.subarray(at));
        break;
      case 3: // delete a range
        b = concat(b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + int(8))));
        break;
      case 4: // truncate
        b = b.subarray(0, at);
        break;
      case 5: // duplicate a slice (repeated fields, fields out of order)
        b = concat(b, b.subarray(at, Math.min(b.length, at + 1 + int(32))));
        break;
      case 6: {
        // splice with another seed
        const other = corpus[int(corpus.length)]!;
        b = concat(b.subarray(0, at), other.subarray(int(other.length + 1)));
        break;
      }
      case 7: // an over-long varint (10 bytes, more than 64 bits)
        b = concat(b.subarray(0, at), new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]), b.subarray(at));
        break;
      default: // a huge length prefix
        b = concat(b.subarray(0, at), new Uint8Array([0x22, 0xff, 0xff, 0xff, 0xff, 0x0f]), b.subarray(at));
    }
  }
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// ---------------------------------------------------------------- seeds

type MsgInit = MessageInitShape<typeof MessageSchema>;

function raftSeeds(r: PeerRig): Uint8Array[] {
  const proposal = toBinary(ProposalSchema, create(ProposalSchema, { height: 11n, data: new Uint8Array([1, 2, 3, 4]) }));
  const cc = toBinary(
    ConfChangeV2Schema,
    codec.confChangeV2ToPb({ transition: 0, changes: [{ changeType: ConfChangeType.AddNode, nodeId: r.b.id }], context: new Uint8Array(0) }),
  );
  const state = encodeChainConfig(create(ConsensusConfigurationSchema, { height: 30n, blockInterval: 3, validators: r.controller.validators }));
  const msgs: MsgInit[] = [
    { msgType: MessageType.MsgHeartbeat, from: r.a.id, term: 6n, commit: 5n },
    { msgType: MessageType.MsgAppend, from: r.a.id, term: 6n, logTerm: 5n, index: 5n, commit: 7n, entries: [
      { entryType: EntryType.EntryNormal, term: 6n, index: 6n, data: proposal },
      { entryType: EntryType.EntryConfChangeV2, term: 6n, index: 7n, data: cc },
    ] },
    { msgType: MessageType.MsgRequestPreVote, from: r.b.id, term: 7n, logTerm: 6n, index: 7n },
    { msgType: MessageType.MsgRequestVote, from: r.b.id, term: 7n, logTerm: 6n, index: 7n },
    { msgType: MessageType.MsgAppendResponse, from: r.b.id, term: 6n, index: 7n, reject: true, rejectHint: 3n },
    { msgType: MessageType.MsgHeartbeatResponse, from: r.b.id, term: 6n },
    { msgType: MessageType.MsgTimeoutNow, from: r.a.id, term: 6n },
    { msgType: MessageType.MsgSnapshot, from: r.a.id, term: 6n, snapshot: {
      data: state,
      metadata: { index: 30n, term: 6n, confState: { voters: [r.a.id, r.self.id, r.b.id], learners: [0x99n] } },
    } },
  ];
  return msgs.map((m) => toBinary(MessageSchema, create(MessageSchema, { to: r.self.id, ...m })));
}

/** A well-formed raft message with hostile field values, from a member at its own origin. */
function structured(rng: Rng, r: PeerRig, raftSeedsPb: readonly Uint8Array[]): { origin: bigint; msg: Uint8Array } {
  const int = (n: number) => Math.floor(rng() * n);
  const num = () => BigInt([0, 1, 5, 6, 7, 8, 30, 1000, 2 ** 32, 2 ** 53 - 1][int(10)]! + (rng() < 0.3 ? int(3) : 0));
  const sender = [r.a, r.b][int(2)]!;
  const m = fromBinary(MessageSchema, raftSeedsPb[int(raftSeedsPb.length)]!);
  m.from = sender.id;
  if (rng() < 0.5) m.msgType = int(19) as MessageType;
  if (rng() < 0.7) m.term = num();
  if (rng() < 0.5) m.index = num();
  if (rng() < 0.5) m.logTerm = num();
  if (rng() < 0.5) m.commit = num();
  if (rng() < 0.3) m.commitTerm = num();
  if (rng() < 0.3) m.reject = !m.reject;
  if (rng() < 0.3) m.rejectHint = num();
  if (rng() < 0.3) {
    m.entries = Array.from({ length: int(4) }, () => ({
      $typeName: "eraftpb.Entry",
      entryType: int(3) as EntryType,
      term: num(),
      index: num(),
      data: Uint8Array.from({ length: int(12) }, () => int(256)),
      context: new Uint8Array(0),
      syncLog: false,
    }));
  }
  return { origin: sender.origin, msg: toBinary(MessageSchema, m) };
}

function envelope(type: string, origin: bigint, msg: Uint8Array): Uint8Array {
  return toBinary(NetworkMsgSchema, create(NetworkMsgSchema, { module: "consensus", type, origin, msg }));
}

// ---------------------------------------------------------------- the run

/** A cheap fingerprint of everything an inbound message could change. */
function fingerprint(r: PeerRig): string {
  const s = r.peer.status();
  return [
    s.term, r.peer.node.raft.vote, s.commit, s.lastIndex, s.applied, s.role, s.leader, s.voters.length,
    r.transport.mailbook.size, r.transport.mailbook.addressMode, r.mailbookChanges.length, r.delivered,
    r.network.sent.length, r.network.broadcasts.length, r.transport.queued, r.drops.length,
  ].join("|");
}

describe(`fuzzing the peer-message path (${CASES} cases, FUZZ_SEED=${SEED})`, () => {
  let r: PeerRig;
  beforeAll(() => {
    r = new PeerRig({ peerMsgsPerSecond: 1_000_000 });
  });
  afterAll(async () => {
    await r.close();
  });

  test("no crash, no hang, no state change from undecodable input", async () => {
    const rng = seededRng(SEED);
    const int = (n: number) => Math.floor(rng() * n);
    const raft = raftSeeds(r);
    const origins = [r.a.origin, r.b.origin, 0x1234n, 0n, (1n << 64n) - 1n];
    const envelopes = [
      ...raft.map((m, i) => envelope("raft", origins[i % origins.length]!, m)),
      envelope("probe", 0n, encodePeerId(r.b.id)),
      envelope("probe-resp", r.b.origin, encodePeerId(r.b.id)),
      envelope("refresh", r.a.origin, encodePeerId(r.a.id)),
    ];
    const outcomes = { undecodable: 0, refused: 0, handled: 0 };
    let lastTerm = 0;
    let lastCommit = 0;
    let slowest = 0;
    const started = performance.now();
    for (let i = 0; i < CASES; i++) {
      // Mutated envelopes, mutated raft messages in a good envelope, well-formed raft messages with
      // hostile values from a member's own origin (they reach the Raft core), and plain noise.
      const pick = rng();
      let bytes: Uint8Array;
      if (pick < 0.25) bytes = mutate(rng, envelopes[int(envelopes.length)]!, envelopes);
      else if (pick < 0.6) bytes = envelope("raft", origins[int(origins.length)]!, mutate(rng, raft[int(raft.length)]!, raft));
      else if (pick < 0.9) {
        const s = structured(rng, r, raft);
        bytes = envelope("raft", s.origin, s.msg);
      } else bytes = Uint8Array.from({ length: int(64) }, () => int(256));

      const before = fingerprint(r);
      const t0 = performance.now();
      let nm: NetworkMsg | undefined;
      try {
        nm = fromBinary(NetworkMsgSchema, bytes);
      } catch {
        outcomes.undecodable++;
      }
      let refused = nm === undefined;
      if (nm !== undefined) {
        try {
          r.transport.handleInbound(parseEnvelope(nm));
          outcomes.handled++;
        } catch (e) {
          if (!(e instanceof EnvelopeError)) throw new Error(`case ${i} (FUZZ_SEED=${SEED}) threw ${e}: ${Buffer.from(bytes).toString("hex")}`);
          outcomes.refused++;
          refused = true;
        }
      }
      slowest = Math.max(slowest, performance.now() - t0);
      if (refused && fingerprint(r) !== before) {
        throw new Error(`case ${i} (FUZZ_SEED=${SEED}): refused input changed state: ${Buffer.from(bytes).toString("hex")}`);
      }
      r.clock.t += 1;
      if (i % 500 === 499) {
        await r.settle(); // the Ready loop persists and sends whatever decodable input was stepped
        const s = r.peer.status();
        expect(s.term).toBeGreaterThanOrEqual(lastTerm);
        expect(s.commit).toBeGreaterThanOrEqual(lastCommit);
        lastTerm = s.term;
        lastCommit = s.commit;
        expect(r.fatal).toEqual([]);
      }
    }
    await r.settle();
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `fuzz: ${CASES} cases in ${seconds.toFixed(1)} s (FUZZ_SEED=${SEED}): ${outcomes.undecodable} undecodable, ` +
        `${outcomes.refused} refused by the envelope check, ${outcomes.handled} handled; slowest case ${slowest.toFixed(1)} ms; ` +
        `drops ${JSON.stringify(Object.fromEntries(countBy(r.drops)))}; term ${r.peer.status().term}; ` +
        `${r.log.lines.filter((l) => l.level === "error").length} error lines`,
    );
    expect(r.fatal).toEqual([]);
    // Every kind of outcome was exercised, so the run covered the paths it claims to.
    expect(outcomes.undecodable).toBeGreaterThan(CASES / 20);
    expect(outcomes.refused).toBeGreaterThan(CASES / 20);
    expect(outcomes.handled).toBeGreaterThan(CASES / 20);
    expect(slowest).toBeLessThan(1000);
  }, 600_000);
});

function countBy(xs: readonly string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return m;
}

describe(`fuzzing the gRPC framing of ProcessNetworkMsg (${WIRE_CASES} calls, FUZZ_SEED=${SEED})`, () => {
  test("every call is answered with a status, nothing leaks, and the server keeps serving", async () => {
    const rng = seededRng(SEED ^ 0x5a5a5a5a);
    const int = (n: number) => Math.floor(rng() * n);
    const handled: unknown[] = [];
    const server = createGrpcServer({
      port: 0,
      maxMessageBytes: 4096,
      log: captureLog().log,
      handlers: { reconfigure() {}, networkMsg: (e) => handled.push(e) },
    });
    await server.start();
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    session.on("error", () => {});
    const good = toBinary(NetworkMsgSchema, create(NetworkMsgSchema, { module: "consensus", type: "probe-resp", origin: 9n, msg: encodePeerId(42n) }));
    const framed = (flags: number, declared: number, body: Uint8Array) => {
      const f = new Uint8Array(5 + body.length);
      f[0] = flags;
      new DataView(f.buffer).setUint32(1, declared >>> 0);
      f.set(body, 5);
      return f;
    };
    const oneCase = (): Uint8Array => {
      const body = rng() < 0.5 ? good : mutate(rng, good, [good]);
      switch (int(6)) {
        case 0: return framed(0, body.length, body); // well framed
        case 1: return framed(int(256), body.length, body); // any flags (compressed without an encoding...)
        case 2: return framed(0, body.length + int(64) - 32, body); // a length that lies
        case 3: return framed(0, [0xffffffff, 4097, 4096, 0][int(4)]!, body); // limits and extremes
        case 4: return concat(framed(0, body.length, body), framed(0, body.length, body)).subarray(0, int(2 * body.length + 11)); // two frames, cut anywhere
        default: return Uint8Array.from({ length: int(40) }, () => int(256)); // noise
      }
    };
    const call = (bytes: Uint8Array) =>
      new Promise<number>((resolve) => {
        const st = session.request({ ":method": "POST", ":path": "/network.NetworkMsgHandlerService/ProcessNetworkMsg", "content-type": "application/grpc", te: "trailers" });
        const timer = setTimeout(() => resolve(-2), 10_000); // a hang
        const done = (code: number) => {
          clearTimeout(timer);
          resolve(code);
        };
        const take = (h: http2.IncomingHttpHeaders) => h["grpc-status"] !== undefined && done(Number(h["grpc-status"]));
        st.on("response", take);
        st.on("trailers", take);
        st.on("close", () => done(-1));
        st.on("error", () => {});
        st.resume();
        st.end(bytes);
      });
    const codes = new Map<number, number>();
    for (let i = 0; i < WIRE_CASES; i += 16) {
      const batch = Array.from({ length: Math.min(16, WIRE_CASES - i) }, oneCase);
      const results = await Promise.all(batch.map(call));
      results.forEach((c, k) => {
        codes.set(c, (codes.get(c) ?? 0) + 1);
        if (c < 0) throw new Error(`call ${i + k} (FUZZ_SEED=${SEED}) got no status (${c}): ${Buffer.from(batch[k]!).toString("hex")}`);
      });
    }
    console.log(`wire fuzz: ${WIRE_CASES} calls, statuses ${JSON.stringify(Object.fromEntries(codes))}, ${handled.length} envelopes handled`);
    // Success, a refusal of the input (INVALID_ARGUMENT; UNIMPLEMENTED for a request without exactly
    // one message) or of its size: never INTERNAL or UNKNOWN, which the network service retries.
    expect([...codes.keys()].filter((c) => ![0, 3, 8, 12].includes(c))).toEqual([]);
    expect(server.load).toMatchObject({ calls: 0, bytes: 0 });
    expect(await call(framed(0, good.length, good))).toBe(0);
    session.close();
    await server.stop(500);
  }, 300_000);
});
