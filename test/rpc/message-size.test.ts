// Oversized and piled-up input on the gRPC port: a message above max_message_bytes
// is refused with RESOURCE_EXHAUSTED from its frame header, before its body is read; calls, request
// bytes and connections in flight are bounded; the controller and network clients apply the same
// limit to replies.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import type { Subprocess } from "bun";
import { Consensus2ControllerService } from "../../gen/controller_pb.ts";
import { NetworkMsgSchema, NetworkService } from "../../gen/network_pb.ts";
import type { InboundEnvelope } from "../../src/peer/envelope.ts";
import { CLIENT_DEFAULTS, createControllerClient, createNetworkClient } from "../../src/rpc/clients.ts";
import { createGrpcServer, type GrpcServer, type RefusalReason, SERVER_DEFAULTS } from "../../src/rpc/server.ts";
import { ensureBinary } from "../support/binary.ts";
import { captureLog } from "../support/capture-log.ts";
import { freePort } from "../support/free-port.ts";
import { waitUntil } from "../support/wait-until.ts";

const PROCESS = "/network.NetworkMsgHandlerService/ProcessNetworkMsg";
const MiB = 1 << 20;
/** The limit of the in-process servers: small, so that the tests move little data. */
const LIMIT = 64 * 1024;

/** A gRPC frame: flags, 4-byte big-endian length, then the message. */
function frame(message: Uint8Array, declared = message.length): Uint8Array {
  const out = new Uint8Array(5 + message.length);
  new DataView(out.buffer).setUint32(1, declared);
  out.set(message, 5);
  return out;
}

/** A probe envelope padded to `size` bytes (the payload is not a valid peer id: the parser refuses it). */
function envelopeOfSize(size: number): Uint8Array {
  const empty = toBinary(NetworkMsgSchema, create(NetworkMsgSchema, { module: "consensus", type: "probe", origin: 1n }));
  // field 4 (msg), length-delimited: tag + varint length + bytes
  const varintLen = (n: number) => (n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : n < 268435456 ? 4 : 5);
  let payload = size - empty.length - 1;
  payload -= varintLen(payload);
  return new Uint8Array([...empty, ...toBinary(NetworkMsgSchema, create(NetworkMsgSchema, { msg: new Uint8Array(payload) }))]);
}

interface RawCall {
  readonly stream: http2.ClientHttp2Stream;
  /** grpc-status and grpc-message, from a trailers-only response or the trailers. */
  readonly status: Promise<{ code: number; message: string }>;
}

/** A gRPC call over a bare HTTP/2 stream, so a test controls exactly which request bytes are sent. */
function rawCall(session: http2.ClientHttp2Session, chunks: Uint8Array[], end: boolean): RawCall {
  const stream = session.request({ ":method": "POST", ":path": PROCESS, "content-type": "application/grpc", te: "trailers" });
  stream.on("error", () => {}); // a refused stream may be reset after its status arrived
  const status = new Promise<{ code: number; message: string }>((resolve) => {
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) {
        resolve({ code: Number(h["grpc-status"]), message: decodeURIComponent(String(h["grpc-message"] ?? "")) });
      }
    };
    stream.on("response", take);
    stream.on("trailers", take);
    stream.on("close", () => resolve({ code: -1, message: "stream closed without a status" }));
  });
  stream.resume();
  for (const c of chunks) stream.write(c);
  if (end) stream.end();
  return { stream, status };
}

describe("gRPC server: one message's size", () => {
  const envelopes: InboundEnvelope[] = [];
  const refusals: RefusalReason[] = [];
  let server: GrpcServer;
  let session: http2.ClientHttp2Session;

  beforeAll(async () => {
    server = createGrpcServer({
      port: 0,
      maxMessageBytes: LIMIT,
      log: captureLog().log,
      handlers: { reconfigure() {}, networkMsg: (e) => envelopes.push(e) },
      onRefused: (r) => refusals.push(r),
    });
    await server.start();
    session = http2.connect(`http://127.0.0.1:${server.port}`);
  });
  afterAll(async () => {
    session.close();
    await server.stop(500);
  });
  afterEach(() => {
    refusals.length = 0;
  });

  test("defaults: 16 MiB for the server and both clients", () => {
    expect(SERVER_DEFAULTS.maxMessageBytes).toBe(16 * MiB);
    expect(CLIENT_DEFAULTS.readMaxBytes).toBe(16 * MiB);
  });

  test("a message of exactly the limit is read and parsed; one byte more is RESOURCE_EXHAUSTED naming the key", async () => {
    const atLimit = await rawCall(session, [frame(envelopeOfSize(LIMIT))], true).status;
    expect(atLimit.code).toBe(Code.InvalidArgument); // parsed: a probe whose payload is not a peer id
    expect(atLimit.message).toContain("invalid peer id");
    const over = await rawCall(session, [frame(envelopeOfSize(LIMIT + 1))], true).status;
    expect(over).toEqual({ code: Code.ResourceExhausted, message: `message of ${LIMIT + 1} bytes is larger than max_message_bytes (${LIMIT})` });
    expect(refusals).toEqual(["too_large"]);
    expect(envelopes).toHaveLength(0);
  });

  test("the refusal comes from the frame header alone: the body is never waited for", async () => {
    // Only the 5 header bytes are sent, the stream stays open: a server that buffered first would wait.
    const call = rawCall(session, [frame(new Uint8Array(0), 100 * MiB)], false);
    const status = await call.status;
    expect(status.code).toBe(Code.ResourceExhausted);
    expect(status.message).toContain(`message of ${100 * MiB} bytes`);
    call.stream.close();
  });

  test("a second frame (or trailing bytes) in a unary request counts against the same limit", async () => {
    const small = envelopeOfSize(LIMIT - 100);
    const status = await rawCall(session, [frame(small), frame(small)], true).status;
    expect(status.code).toBe(Code.ResourceExhausted);
    expect(refusals).toEqual(["too_large"]);
  });

  test("a request body that is not the method's message is INVALID_ARGUMENT (never retried), not INTERNAL", async () => {
    const status = await rawCall(session, [frame(new Uint8Array([0xff, 0xff, 0xff, 0xff]))], true).status;
    expect(status.code).toBe(Code.InvalidArgument);
  });
});

describe("gRPC server: what calls in flight may hold", () => {
  let server: GrpcServer;
  const refusals: RefusalReason[] = [];
  const sessions: http2.ClientHttp2Session[] = [];

  beforeAll(async () => {
    server = createGrpcServer({
      port: 0,
      maxMessageBytes: LIMIT,
      maxCalls: 4,
      maxInflightBytes: 96 * 1024,
      maxConnections: 3,
      log: captureLog().log,
      handlers: { reconfigure() {}, networkMsg() {} },
      onRefused: (r) => refusals.push(r),
    });
    await server.start();
  });
  afterAll(async () => {
    for (const s of sessions) s.destroy();
    await server.stop(500);
  });
  afterEach(() => {
    refusals.length = 0;
  });

  function connect(): http2.ClientHttp2Session {
    const s = http2.connect(`http://127.0.0.1:${server.port}`);
    s.on("error", () => {});
    sessions.push(s);
    return s;
  }

  test("calls beyond the bound are RESOURCE_EXHAUSTED at once; the bound frees as calls end", async () => {
    const s = connect();
    // Four slow uploads: header and a little of the body, then nothing.
    const slow = Array.from({ length: 4 }, () => rawCall(s, [frame(new Uint8Array(10), 1000)], false));
    await waitUntil(() => server.load.calls === 4, "4 calls in flight");
    const fifth = await rawCall(s, [frame(envelopeOfSize(100))], true).status;
    expect(fifth.code).toBe(Code.ResourceExhausted);
    expect(fifth.message).toContain("too many calls in flight");
    expect(refusals).toEqual(["busy"]);
    for (const c of slow) c.stream.close(http2.constants.NGHTTP2_CANCEL);
    await waitUntil(() => server.load.calls === 0, "the slow calls to end");
    expect((await rawCall(s, [frame(envelopeOfSize(100))], true).status).code).toBe(Code.InvalidArgument);
  });

  test("request bytes held by calls in flight are bounded; the budget frees as calls end", async () => {
    const s = connect();
    const big = rawCall(s, [frame(new Uint8Array(60 * 1024), LIMIT)], false);
    await waitUntil(() => server.load.bytes >= 60 * 1024, "the first upload to be held");
    const second = await rawCall(s, [frame(envelopeOfSize(50 * 1024))], true).status;
    expect(second.code).toBe(Code.ResourceExhausted);
    expect(second.message).toContain("too many bytes");
    expect(refusals).toEqual(["byte_budget"]);
    big.stream.close(http2.constants.NGHTTP2_CANCEL);
    await waitUntil(() => server.load.bytes === 0 && server.load.calls === 0, "the budget to be released");
    expect((await rawCall(s, [frame(envelopeOfSize(50 * 1024))], true).status).code).toBe(Code.InvalidArgument);
  });

  test("connections beyond the bound are closed at once; the others keep working", async () => {
    for (const s of sessions.splice(0)) s.destroy();
    await waitUntil(() => server.load.connections === 0, "old connections to close");
    const kept = [connect(), connect(), connect()];
    for (const s of kept) expect((await rawCall(s, [frame(envelopeOfSize(100))], true).status).code).toBe(Code.InvalidArgument);
    const extra = connect();
    const refused = await rawCall(extra, [frame(envelopeOfSize(100))], true).status;
    expect(refused.code).toBe(-1);
    expect(refusals).toContain("connections");
    expect(server.load.connections).toBe(3);
    expect((await rawCall(kept[0]!, [frame(envelopeOfSize(100))], true).status).code).toBe(Code.InvalidArgument);
  });
});

describe("clients apply the limit to replies", () => {
  let server: http2.Http2Server;
  let port: number;
  const big = new Uint8Array(2 * MiB);

  beforeAll(async () => {
    server = http2.createServer(
      connectNodeAdapter({
        grpc: true,
        grpcWeb: false,
        connect: false,
        routes: (r) => {
          r.service(Consensus2ControllerService, {
            getProposal: () => ({ status: { code: 0 }, proposal: { height: 1n, data: big } }),
            checkProposal: () => ({ code: 0 }),
            commitBlock: () => ({ status: { code: 0 } }),
          });
          r.service(NetworkService, {
            sendMsg: () => ({ code: 0 }),
            broadcast: () => ({ code: 0 }),
            registerNetworkMsgHandler: () => ({ code: 0 }),
            getNetworkStatus: () => ({ peerCount: 0n }),
          });
        },
      }),
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => {
    server.close();
  });

  test("a controller reply above readMaxBytes fails with RESOURCE_EXHAUSTED; one below passes", async () => {
    const small = createControllerClient({ host: "127.0.0.1", port, readMaxBytes: MiB });
    const err = await small.getProposal({}).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.ResourceExhausted);
    small.close();
    const roomy = createControllerClient({ host: "127.0.0.1", port, readMaxBytes: 4 * MiB });
    expect((await roomy.getProposal({})).proposal?.data.length).toBe(2 * MiB);
    roomy.close();
  });

  test("the network client is limited the same way (and so are our own requests to it)", async () => {
    const net = createNetworkClient({ host: "127.0.0.1", port, readMaxBytes: MiB });
    const err = await net.sendMsg(create(NetworkMsgSchema, { module: "consensus", msg: big })).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.ResourceExhausted);
    net.close();
  });
});

describe("the compiled service does not buffer a 100 MiB message", () => {
  let dir: string;
  let proc: Subprocess;
  let port: number;
  let client: grpc.Client;

  beforeAll(async () => {
    const binary = await ensureBinary();
    dir = mkdtempSync(join(tmpdir(), "message-size-"));
    port = await freePort();
    writeFileSync(join(dir, "node_address"), "2222222222222222222222222222222222222222");
    writeFileSync(
      join(dir, "config.toml"),
      `[consensus_raft]\nnode_addr = "node_address"\ngrpc_listen_port = ${port}\nnetwork_port = ${await freePort()}\n` +
        `controller_port = ${await freePort()}\nenable_metrics = false\nlog_level = "warn"\n`,
    );
    proc = Bun.spawn([binary, "run", "-c", "config.toml", "--stdout"], { cwd: dir, stdout: "ignore", stderr: "ignore" });
    client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
      "grpc.max_send_message_length": -1,
      "grpc.max_receive_message_length": -1,
    });
    await waitUntil(async () => (await send(Buffer.alloc(0))).code !== grpc.status.UNAVAILABLE, "the service to listen", 30_000, 100);
  }, 240_000);
  afterAll(async () => {
    client?.close();
    proc?.kill("SIGKILL");
    await proc?.exited;
    rmSync(dir, { recursive: true, force: true });
  });

  function send(body: Buffer): Promise<{ code: number; details: string }> {
    return new Promise((resolve) =>
      client.makeUnaryRequest(PROCESS, (b: Buffer) => b, (b: Buffer) => b, body, new grpc.Metadata(), { deadline: Date.now() + 60_000 }, (e) =>
        resolve({ code: e?.code ?? 0, details: e?.details ?? "" }),
      ),
    );
  }

  /** Peak resident memory of the service process so far, in MiB. */
  function peakRss(): number {
    return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${proc.pid}/status`, "utf8"))![1]) / 1024;
  }

  test("refused with RESOURCE_EXHAUSTED while its peak memory stays put; an accepted 15 MiB message shows what buffering costs", async () => {
    const before = peakRss();
    const huge = await send(Buffer.alloc(100 * MiB, 7));
    expect(huge.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(huge.details).toContain("max_message_bytes");
    const afterHuge = peakRss();
    // Control: a message under the limit is buffered and parsed, and the same measure sees it.
    const accepted = await send(Buffer.from(envelopeOfSize(15 * MiB)));
    expect(accepted.code).toBe(grpc.status.INVALID_ARGUMENT);
    const afterAccepted = peakRss();
    console.log(`peak RSS: ${before.toFixed(1)} MiB at start, ${afterHuge.toFixed(1)} after a refused 100 MiB message, ${afterAccepted.toFixed(1)} after an accepted 15 MiB one`);
    expect(afterHuge - before).toBeLessThan(20);
    expect(afterAccepted - afterHuge).toBeGreaterThan(15);
  }, 120_000);
});
