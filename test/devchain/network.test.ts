// The network emulator against fake consensus handlers: origin rewrite, broadcast, static routing,
// fire-and-forget delivery with retries, and the injected faults (loss, delay, duplication, partitions).
import { afterEach, expect, test } from "bun:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { NetworkMsgHandlerService, NetworkService, type NetworkMsg } from "../../gen/network_pb.ts";
import { freePorts, grpcClient, listenGrpc, type GrpcServer } from "../../src/devchain/grpc.ts";
import { deriveAddress, originOf } from "../../src/devchain/identity.ts";
import { NetworkFabric, type NetworkOptions } from "../../src/devchain/network.ts";
import { seededRng } from "../../src/devchain/rng.ts";
import { waitFor } from "../../src/devchain/wait.ts";

interface Received {
  origin: bigint;
  type: string;
  body: string;
  clientName: string | null;
  at: number;
}

/** A consensus' NetworkMsgHandlerService that records what arrives; `answer` may throw to fail calls. */
class FakeHandler {
  readonly got: Received[] = [];
  answer: (msg: NetworkMsg) => number = () => 0;
  private server: GrpcServer | undefined;

  constructor(readonly port: number) {}

  async listen(): Promise<this> {
    this.server = await listenGrpc(
      (r) =>
        r.service(NetworkMsgHandlerService, {
          processNetworkMsg: (msg, ctx) => {
            const code = this.answer(msg);
            this.got.push({
              origin: msg.origin,
              type: msg.type,
              body: new TextDecoder().decode(msg.msg),
              clientName: ctx.requestHeader.get("client-name"),
              at: Date.now(),
            });
            return { code };
          },
        }),
      this.port,
    );
    return this;
  }

  close(): void {
    this.server?.close();
  }

  bodies(): string[] {
    return this.got.map((g) => g.body);
  }
}

const fabrics: NetworkFabric[] = [];
const handlers: FakeHandler[] = [];
afterEach(async () => {
  for (const f of fabrics.splice(0)) await f.close();
  for (const h of handlers.splice(0)) h.close();
});

/** A fabric of `n` nodes, each with a fake consensus handler (listening unless `up` is false). */
async function net(n: number, opts: NetworkOptions = {}, up = true) {
  const fabric = new NetworkFabric({ seed: 42, ...opts });
  fabrics.push(fabric);
  const ports = await freePorts(n);
  const hs: FakeHandler[] = [];
  const clients = [];
  for (let i = 0; i < n; i++) {
    const h = new FakeHandler(ports[i]);
    if (up) await h.listen();
    handlers.push(h);
    hs.push(h);
    const ep = await fabric.addNode({ address: deriveAddress("net-test", i), consensusPort: ports[i] });
    clients.push(grpcClient(NetworkService, ep.port, "consensus", 3000));
  }
  return { fabric, hs, clients, origins: fabric.nodes.map((ep) => ep.origin) };
}

const msg = (body: string, origin = 0n, type = "raft") => ({
  module: "consensus",
  type,
  origin,
  msg: new TextEncoder().encode(body),
});

test("origins are the big-endian u64 of the first 8 address bytes", () => {
  const addr = Uint8Array.from(Buffer.from("f805cf7df8dffc4fd9c98791d72d00c9587dc1d9", "hex"));
  expect(originOf(addr)).toBe(0xf805cf7df8dffc4fn);
  expect(() => originOf(new Uint8Array(4))).toThrow(/at least 8 bytes/);
});

test("SendMsg reaches only the destination, with origin rewritten to the sender, without registration", async () => {
  const { fabric, hs, clients, origins } = await net(3);
  const r = await clients[0].sendMsg(msg("hello", origins[2]));
  expect(r.code).toBe(0);
  await waitFor(() => hs[2].got.length === 1, 5000, "delivery to node 2");
  expect(hs[2].got[0]).toMatchObject({ origin: origins[0], type: "raft", body: "hello", clientName: "network" });
  await fabric.waitIdle(5000);
  expect(hs[0].got).toHaveLength(0);
  expect(hs[1].got).toHaveLength(0);
  expect(fabric.stats().raft).toEqual({ sent: 1, duplicated: 0, delivered: 1, dropped: 0 });
  expect(fabric.nodes[0].clientNames.has("consensus")).toBe(true);
});

test("unknown destinations and sends to oneself are answered 0 and dropped", async () => {
  const { fabric, hs, clients, origins } = await net(2);
  expect((await clients[0].sendMsg(msg("lost", 12345n))).code).toBe(0);
  expect((await clients[0].sendMsg(msg("me", origins[0]))).code).toBe(0);
  await fabric.waitIdle(5000);
  expect(hs[0].got.length + hs[1].got.length).toBe(0);
  expect(fabric.drops.noRoute).toBe(1);
  expect(fabric.drops.self).toBe(1);
});

test("Broadcast reaches every other node once and never the sender", async () => {
  const { fabric, hs, clients, origins } = await net(4);
  expect((await clients[1].broadcast(msg("probe!", 0n, "probe"))).code).toBe(0);
  await fabric.waitIdle(5000);
  expect(hs.map((h) => h.got.length)).toEqual([1, 0, 1, 1]);
  for (const i of [0, 2, 3]) expect(hs[i].got[0].origin).toBe(origins[1]);
  expect(fabric.stats().probe).toEqual({ sent: 3, duplicated: 0, delivered: 3, dropped: 0 });
});

test("registration is recorded and answered 0; other NetworkService calls answer too", async () => {
  const { fabric, clients, origins } = await net(3);
  const r = await clients[0].registerNetworkMsgHandler({ moduleName: "consensus", hostname: "localhost", port: "50001" });
  expect(r.code).toBe(0);
  expect(fabric.nodes[0].registrations).toEqual([{ module: "consensus", hostname: "localhost", port: "50001" }]);
  expect((await clients[0].getNetworkStatus({})).peerCount).toBe(2n);
  const peers = await clients[0].getPeersNetInfo({});
  expect(peers.nodes.map((n) => n.origin).sort()).toEqual([origins[1], origins[2]].sort());
  fabric.partition([0], [1, 2]);
  expect((await clients[0].getNetworkStatus({})).peerCount).toBe(0n);
});

test("messages of another module are dropped (only consensus is routed)", async () => {
  const { fabric, hs, clients, origins } = await net(2);
  await clients[0].sendMsg({ ...msg("x", origins[1]), module: "controller" });
  await fabric.waitIdle(5000);
  expect(hs[1].got).toHaveLength(0);
  expect(fabric.drops.unknownModule).toBe(1);
});

test("without faults every message arrives exactly once; with jitter they arrive out of order", async () => {
  const { fabric, hs, clients, origins } = await net(2);
  const N = 200;
  const bodies = Array.from({ length: N }, (_, i) => `m${i}`);
  await Promise.all(bodies.map((b) => clients[0].sendMsg(msg(b, origins[1]))));
  await fabric.waitIdle(10_000);
  expect(hs[1].bodies().sort()).toEqual([...bodies].sort());
  expect(fabric.stats().raft).toEqual({ sent: N, duplicated: 0, delivered: N, dropped: 0 });

  hs[1].got.length = 0;
  fabric.setLinkFault({ delayMs: 30, jitterMs: 30 });
  for (const b of bodies) await clients[0].sendMsg(msg(b, origins[1])); // sent strictly in order
  await fabric.waitIdle(10_000);
  expect(hs[1].bodies().sort()).toEqual([...bodies].sort());
  expect(hs[1].bodies()).not.toEqual(bodies);
});

test("loss drops about the configured share, and the same seed drops the same messages", async () => {
  const runs: string[][] = [];
  for (let run = 0; run < 2; run++) {
    const { fabric, hs, clients, origins } = await net(2, { rng: seededRng(7) });
    fabric.setLinkFault({ loss: 0.5 }, { from: 0, to: 1 });
    for (let i = 0; i < 200; i++) await clients[0].sendMsg(msg(`m${i}`, origins[1]));
    // The reverse link is untouched.
    for (let i = 0; i < 20; i++) await clients[1].sendMsg(msg(`r${i}`, origins[0]));
    await fabric.waitIdle(10_000);
    const s = fabric.stats().raft;
    expect(s.sent).toBe(220);
    expect(s.delivered + s.dropped).toBe(220);
    expect(fabric.drops.loss).toBe(s.dropped);
    expect(hs[0].got).toHaveLength(20);
    expect(hs[1].got.length).toBeGreaterThan(60);
    expect(hs[1].got.length).toBeLessThan(140);
    runs.push(hs[1].bodies().sort());
  }
  expect(runs[0]).toEqual(runs[1]);
});

test("duplication delivers a message twice and delay holds it back", async () => {
  const { fabric, hs, clients, origins } = await net(2);
  fabric.setLinkFault({ duplicate: 1 });
  await clients[0].sendMsg(msg("twice", origins[1]));
  await fabric.waitIdle(5000);
  expect(hs[1].bodies()).toEqual(["twice", "twice"]);
  expect(fabric.stats().raft).toEqual({ sent: 1, duplicated: 1, delivered: 2, dropped: 0 });

  fabric.clearLinkFaults();
  fabric.setLinkFault({ delayMs: 300 });
  const sentAt = Date.now();
  await clients[0].sendMsg(msg("late", origins[1]));
  await fabric.waitIdle(5000);
  expect(hs[1].got[2].at - sentAt).toBeGreaterThanOrEqual(250);
});

test("partitions block both ways between groups, one-way blocks only one way, heal restores", async () => {
  const { fabric, hs, clients, origins } = await net(3);
  fabric.partition([0], [1, 2]);
  await clients[0].sendMsg(msg("0to1", origins[1]));
  await clients[1].sendMsg(msg("1to0", origins[0]));
  await clients[1].sendMsg(msg("1to2", origins[2]));
  await clients[2].broadcast(msg("2all"));
  await fabric.waitIdle(5000);
  expect(hs.map((h) => h.bodies().sort())).toEqual([[], ["2all"], ["1to2"]]);
  expect(fabric.drops.partition).toBe(3);

  fabric.heal();
  fabric.block(0, 1);
  await clients[0].sendMsg(msg("0to1", origins[1]));
  await clients[1].sendMsg(msg("1to0", origins[0]));
  await fabric.waitIdle(5000);
  expect(hs[0].bodies()).toEqual(["1to0"]);
  expect(hs[1].bodies()).toEqual(["2all"]);

  fabric.heal();
  await clients[0].sendMsg(msg("0to1", origins[1]));
  await fabric.waitIdle(5000);
  expect(hs[1].bodies()).toEqual(["2all", "0to1"]);
  expect(() => fabric.partition([0], [7])).toThrow(/no node 7/);
  expect(() => fabric.setLinkFault({ loss: 2 })).toThrow(/within \[0, 1\]/);
});

test("a partition raised while a message is delayed cuts it", async () => {
  const { fabric, hs, clients, origins } = await net(2);
  fabric.setLinkFault({ delayMs: 200 });
  await clients[0].sendMsg(msg("in flight", origins[1]));
  fabric.partition([0], [1]);
  await fabric.waitIdle(5000);
  expect(hs[1].got).toHaveLength(0);
  expect(fabric.drops.partition).toBe(1);
});

test("delivery retries while the consensus is down, then delivers; gives up after the retry budget", async () => {
  const { fabric, hs, clients, origins } = await net(2, { retry: { initialMs: 50, maxAttempts: 20, maxElapsedMs: 10_000 } }, false);
  await hs[0].listen();
  await clients[0].sendMsg(msg("patient", origins[1]));
  await Bun.sleep(200); // a few failed attempts
  expect(hs[1].got).toHaveLength(0);
  await hs[1].listen();
  await fabric.waitIdle(10_000);
  expect(hs[1].bodies()).toEqual(["patient"]);
  expect(fabric.stats().raft.delivered).toBe(1);

  hs[1].close();
  const { fabric: f2, clients: c2, origins: o2 } = await net(2, { retry: { initialMs: 20, maxAttempts: 3 } }, false);
  await c2[0].sendMsg(msg("doomed", o2[1]));
  await f2.waitIdle(5000);
  expect(f2.drops.failed).toBe(1);
  expect(f2.stats().raft).toEqual({ sent: 1, duplicated: 0, delivered: 0, dropped: 1 });
});

test("UNKNOWN from the handler is retried (re-delivery), INVALID_ARGUMENT is not", async () => {
  const { fabric, hs, clients, origins } = await net(2, { retry: { initialMs: 20, maxAttempts: 4 } });
  let calls = 0;
  hs[1].answer = () => {
    calls++;
    throw new Error("boom"); // an untyped throw reaches the client as UNKNOWN
  };
  await clients[0].sendMsg(msg("flaky", origins[1]));
  await fabric.waitIdle(5000);
  expect(calls).toBe(4);
  expect(fabric.drops.failed).toBe(1);

  calls = 0;
  hs[1].answer = () => {
    calls++;
    throw new ConnectError("wrong module", Code.InvalidArgument);
  };
  await clients[0].sendMsg(msg("bad", origins[1]));
  await fabric.waitIdle(5000);
  expect(calls).toBe(1);
  expect(fabric.drops.failed).toBe(2);
});

test("a stopped network endpoint refuses its consensus and receives nothing", async () => {
  const { fabric, hs, clients, origins } = await net(2);
  fabric.nodes[1].stop();
  await clients[0].sendMsg(msg("to a dead network", origins[1]));
  await fabric.waitIdle(5000);
  expect(hs[1].got).toHaveLength(0);
  expect(fabric.drops.stopped).toBe(1);
  const refused = await clients[1].sendMsg(msg("x", origins[0])).catch((e) => ConnectError.from(e).code);
  expect([Code.Unavailable, Code.Canceled]).toContain(refused as Code);
  await fabric.nodes[1].start();
  await clients[0].sendMsg(msg("back", origins[1]));
  await fabric.waitIdle(5000);
  expect(hs[1].bodies()).toEqual(["back"]);
});
