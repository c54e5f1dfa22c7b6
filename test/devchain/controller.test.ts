// The controller emulator against small fake consensus servers: height rules of the three RPCs,
// start-up Reconfigure, block sync with CheckBlock + Reconfigure, admin config changes, faults.
import { afterEach, describe, expect, test } from "bun:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { BlockHeaderSchema } from "../../gen/blockchain_pb.ts";
import {
  ProposalInnerSchema,
  ProposalWithProofSchema,
  type ConsensusConfiguration,
  type Proposal,
} from "../../gen/common_pb.ts";
import { ConsensusService } from "../../gen/consensus_pb.ts";
import { Consensus2ControllerService } from "../../gen/controller_pb.ts";
import { StatusCodeEnum as S } from "../../gen/status_code_pb.ts";
import { ControllerEmulator, ControllerGroup, U64_MAX, type ControllerOptions } from "../../src/devchain/controller.ts";
import { freePorts, grpcClient, listenGrpc, type GrpcServer } from "../../src/devchain/grpc.ts";
import { deriveAddress, toHex } from "../../src/devchain/identity.ts";
import { waitFor } from "../../src/devchain/wait.ts";

/** A consensus that records what the controller tells it and answers with programmable codes. */
class FakeConsensus {
  readonly reconfigures: ConsensusConfiguration[] = [];
  readonly checkBlocks: { height: number; data: Uint8Array }[] = [];
  readonly clientNames = new Set<string>();
  reconfigureCode = (): number => 0;
  checkBlockCode = (): number => 0;
  /** When set, CheckBlock waits for it: lets a test look at the controller mid-sync. */
  checkBlockGate: Promise<void> | undefined;
  private server: GrpcServer | undefined;

  constructor(readonly port: number) {}

  async listen(): Promise<this> {
    this.server = await listenGrpc((r) =>
      r.service(ConsensusService, {
        reconfigure: (cfg, ctx) => {
          this.clientNames.add(ctx.requestHeader.get("client-name") ?? "");
          this.reconfigures.push(cfg);
          return { code: this.reconfigureCode() };
        },
        checkBlock: async (pwp, ctx) => {
          this.clientNames.add(ctx.requestHeader.get("client-name") ?? "");
          await this.checkBlockGate;
          this.checkBlocks.push({ height: Number(pwp.proposal?.height), data: pwp.proposal?.data ?? new Uint8Array() });
          return { code: this.checkBlockCode() };
        },
      }),
    this.port);
    return this;
  }

  close(): void {
    this.server?.close();
  }
}

const A = deriveAddress("ctl-test", 0);
const B = deriveAddress("ctl-test", 1);
const C = deriveAddress("ctl-test", 2);
const GENESIS = { blockInterval: 3, validators: [A, B] };

const cleanup: (() => void)[] = [];
afterEach(() => {
  while (cleanup.length) cleanup.pop()!();
});

/** A started controller with its fake consensus already listening (unless `consensusUp` is false). */
async function setup(opts: Partial<ControllerOptions> & { consensusUp?: boolean } = {}) {
  const [consensusPort] = await freePorts(1);
  const consensus = new FakeConsensus(consensusPort);
  if (opts.consensusUp !== false) await consensus.listen();
  const ctrl = new ControllerEmulator({
    address: A,
    genesis: GENESIS,
    consensusPort,
    retryIntervalMs: 50,
    syncCheckIntervalMs: 60_000,
    ...opts,
  });
  await ctrl.start();
  cleanup.push(() => {
    ctrl.close();
    consensus.close();
  });
  const client = grpcClient(Consensus2ControllerService, ctrl.port, "consensus", 3000);
  if (opts.consensusUp !== false && !opts.serveBeforeReconfigure) await waitFor(() => ctrl.serving, 5000, "controller serving");
  return { ctrl, consensus, client };
}

type Client = Awaited<ReturnType<typeof setup>>["client"];

async function proposal(client: Client): Promise<Proposal> {
  const r = await client.getProposal({});
  expect(r.status?.code).toBe(S.Success);
  return r.proposal!;
}

const commit = (client: Client, p: Proposal) =>
  client.commitBlock(create(ProposalWithProofSchema, { proposal: p, proof: new Uint8Array() }));

/** Rewrites a proposal's header (and keeps everything else) to make bad contents. */
function tamper(p: Proposal, edit: (h: ReturnType<typeof headerOf>) => void): Proposal {
  const inner = fromBinary(ProposalInnerSchema, p.data);
  edit(inner.proposal!.header!);
  return { ...p, data: toBinary(ProposalInnerSchema, inner) };
}

/** The server is gone: a call racing the cut sees Canceled, later ones a refused connection. */
async function expectGone(client: Client): Promise<void> {
  const codeOf = (p: Promise<unknown>) => p.then(() => undefined, (e) => ConnectError.from(e).code);
  expect([Code.Canceled, Code.Unavailable]).toContain((await codeOf(client.getProposal({})))!);
  expect(await codeOf(client.getProposal({}))).toBe(Code.Unavailable);
}

function headerOf(p: Proposal) {
  return fromBinary(ProposalInnerSchema, p.data).proposal!.header!;
}

describe("start-up", () => {
  test("Reconfigure is retried until consensus answers 0, and only then the controller serves", async () => {
    const { ctrl, consensus, client } = await setup({ consensusUp: false });
    let answers = [S.ConsensusServerNotReady, S.ConsensusServerNotReady];
    consensus.reconfigureCode = () => answers.shift() ?? 0;
    // Consensus is down: the controller keeps trying and does not serve yet.
    await waitFor(() => ctrl.reconfigureCalls.length >= 2, 5000, "Reconfigure attempts while consensus is down");
    expect(ctrl.serving).toBe(false);
    const err = await client.getProposal({}).catch((e) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.Unavailable);

    await consensus.listen();
    await waitFor(() => ctrl.serving, 5000, "controller serving");
    // Two refusals (200), then success: exactly three calls reached consensus.
    expect(consensus.reconfigures.map((c) => c.height)).toEqual([0n, 0n, 0n]);
    expect(consensus.reconfigures[2].blockInterval).toBe(3);
    expect(consensus.reconfigures[2].validators.map(toHex)).toEqual([toHex(A), toHex(B)]);
    expect([...consensus.clientNames]).toEqual(["controller"]);
    expect((await client.getProposal({})).status?.code).toBe(S.Success);
    // Once acknowledged, it never sends Reconfigure again outside sync.
    await Bun.sleep(200);
    expect(consensus.reconfigures).toHaveLength(3);
  });

  test("serveBeforeReconfigure serves while consensus is still unreachable", async () => {
    const { ctrl, client } = await setup({ consensusUp: false, serveBeforeReconfigure: true });
    await waitFor(() => ctrl.serving, 5000, "controller serving");
    expect(ctrl.reconfiguredAtStart).toBe(false);
    const ping = await commit(client, { height: U64_MAX, data: new Uint8Array() } as Proposal);
    expect(ping.status?.code).toBe(S.Success);
  });
});

describe("height rules", () => {
  test("GetProposal is h+1, built on the head, and cached per height until commit", async () => {
    const { ctrl, client } = await setup();
    const p1 = await proposal(client);
    expect(p1.height).toBe(1n);
    const h = headerOf(p1);
    expect(h.height).toBe(1n);
    expect(toHex(h.prevhash)).toBe(toHex(ctrl.head.hash));
    expect(toHex(h.proposer)).toBe(toHex(A));
    expect(toHex((await proposal(client)).data)).toBe(toHex(p1.data));

    expect((await commit(client, p1)).status?.code).toBe(S.Success);
    const p2 = await proposal(client);
    expect(p2.height).toBe(2n);
    expect(toHex(headerOf(p2).prevhash)).toBe(toHex(ctrl.head.hash));
  });

  test("CommitBlock: ping, commit of h+1, idempotent at or below h, TooHigh above h+1", async () => {
    const { ctrl, client } = await setup();
    const ping0 = await commit(client, { height: U64_MAX, data: new Uint8Array() } as Proposal);
    expect(ping0.status?.code).toBe(S.Success);
    expect(ping0.config?.height).toBe(0n);
    expect(ctrl.height).toBe(0);

    const p1 = await proposal(client);
    const r1 = await commit(client, p1);
    expect(r1.status?.code).toBe(S.Success);
    expect(r1.config?.height).toBe(1n);
    expect(r1.config?.blockInterval).toBe(3);
    expect(r1.config?.validators.map(toHex)).toEqual([toHex(A), toHex(B)]);
    const hash1 = toHex(ctrl.head.hash);

    // A different block at an already committed height is "done" without any check, as in the real one.
    const again = await commit(client, { height: 1n, data: new Uint8Array([1, 2, 3]) } as Proposal);
    expect(again.status?.code).toBe(S.Success);
    expect(again.config?.height).toBe(1n);
    const zero = await commit(client, { height: 0n, data: new Uint8Array() } as Proposal);
    expect(zero.config?.height).toBe(0n);
    expect(ctrl.height).toBe(1);
    expect(toHex(ctrl.head.hash)).toBe(hash1);
    expect(ctrl.heightStats(1)).toEqual({ newCommits: 1, repeatCommits: 1, failedCommits: 0 });

    const high = await commit(client, { height: 5n, data: new Uint8Array() } as Proposal);
    expect(high.status?.code).toBe(S.ProposalTooHigh);
    expect(high.config?.height).toBe(5n);
    expect(high.config?.blockInterval).toBe(3);
    expect(high.config?.validators).toHaveLength(2);

    const ping1 = await commit(client, { height: U64_MAX, data: new Uint8Array() } as Proposal);
    expect(ping1.config?.height).toBe(1n);
  });

  test("CommitBlock at h+1 with bad contents fails with the requested height in config", async () => {
    const { ctrl, client } = await setup();
    const p1 = await proposal(client);
    const wrongPrev = await commit(client, tamper(p1, (h) => (h.prevhash = new Uint8Array(32).fill(7))));
    expect(wrongPrev.status?.code).toBe(S.ProposalCheckError);
    expect(wrongPrev.config?.height).toBe(1n);
    const garbage = await commit(client, { height: 1n, data: new Uint8Array([0xff, 0xff, 0xff]) } as Proposal);
    expect(garbage.status?.code).toBe(S.DecodeError);
    const noBlock = await commit(client, { height: 1n, data: new Uint8Array() } as Proposal);
    expect(noBlock.status?.code).toBe(S.NoForkTree);
    expect(ctrl.height).toBe(0);
    expect(ctrl.heightStats(1).failedCommits).toBe(3);
  });

  test("CheckProposal: own proposal, too low, too high, and bad contents", async () => {
    const { ctrl, client } = await setup();
    const p1 = await proposal(client);
    expect((await client.checkProposal(p1)).code).toBe(S.Success);
    expect((await client.checkProposal({ ...p1, height: 0n })).code).toBe(S.ProposalTooLow);
    expect((await client.checkProposal({ ...p1, height: 9n })).code).toBe(S.ProposalTooHigh);
    expect((await client.checkProposal({ ...p1, data: new Uint8Array([0xff, 0xff]) })).code).toBe(S.DecodeError);
    const bad = {
      height: tamper(p1, (h) => (h.height = 2n)),
      prevhash: tamper(p1, (h) => (h.prevhash = new Uint8Array(32))),
      proposer: tamper(p1, (h) => (h.proposer = C)),
      future: tamper(p1, (h) => (h.timestamp = BigInt(Date.now() + 60_000))),
    };
    for (const [what, p] of Object.entries(bad)) {
      expect([what, (await client.checkProposal(p)).code]).toEqual([what, S.ProposalCheckError]);
    }
    // A proposal from another validator (B) built on the same head is accepted.
    const fromB = tamper(p1, (h) => (h.proposer = B));
    expect((await client.checkProposal(fromB)).code).toBe(S.Success);
    expect(ctrl.height).toBe(0);
  });
});

describe("admin", () => {
  test("validator and interval changes take effect in the config of the block at the scheduled height", async () => {
    const { ctrl, client } = await setup();
    ctrl.scheduleConfigChange({ atHeight: 2, blockInterval: 1 });
    ctrl.scheduleConfigChange({ atHeight: 3, validators: [B, C] });
    expect(() => ctrl.scheduleConfigChange({ atHeight: 0, blockInterval: 5 })).toThrow(/cannot schedule/);
    expect(() => ctrl.scheduleConfigChange({ atHeight: 9, validators: [] })).toThrow(/must not be empty/);

    const configs: ConsensusConfiguration[] = [];
    for (let i = 0; i < 4; i++) configs.push((await commit(client, await proposal(client))).config!);
    expect(configs.map((c) => [Number(c.height), c.blockInterval, c.validators.length])).toEqual([
      [1, 3, 2],
      [2, 1, 2],
      [3, 1, 2],
      [4, 1, 2],
    ]);
    expect(configs[1].validators.map(toHex)).toEqual([toHex(A), toHex(B)]);
    expect(configs[2].validators.map(toHex)).toEqual([toHex(B), toHex(C)]);
    // A is no longer a validator: a proposal with A as proposer is now refused.
    const p5 = await proposal(client);
    expect((await client.checkProposal(p5)).code).toBe(S.Success); // own proposal short-circuits
    expect((await client.checkProposal(tamper(p5, (h) => (h.timestamp += 1n)))).code).toBe(S.ProposalCheckError);
  });

  test("injected statuses, gRPC errors and hangs", async () => {
    const { ctrl, client } = await setup();
    ctrl.injectFault({ methods: ["CommitBlock"], status: S.StorageServerNotReady, times: 1 });
    const p1 = await proposal(client);
    const failed = await commit(client, p1);
    expect(failed.status?.code).toBe(S.StorageServerNotReady);
    expect(failed.config?.height).toBe(1n);
    expect((await commit(client, p1)).status?.code).toBe(S.Success);

    ctrl.injectFault({ methods: ["GetProposal"], grpcCode: Code.Unavailable });
    const err = await client.getProposal({}).catch((e) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.Unavailable);
    ctrl.clearFaults();

    ctrl.hang(1500);
    const started = Date.now();
    const timedOut = await client.getProposal({}, { timeoutMs: 200 }).catch((e) => ConnectError.from(e));
    expect((timedOut as ConnectError).code).toBe(Code.DeadlineExceeded);
    // A call made during the hang is answered once it is over.
    const late = await client.getProposal({}, { timeoutMs: 10_000 });
    expect(late.status?.code).toBe(S.Success);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(ctrl.callCounts.GetProposal).toBeGreaterThanOrEqual(4);
    expect([...ctrl.clientNames]).toEqual(["consensus"]);
  });

  test("stop/start of the server, kill and restart keep the chain and redo the start-up Reconfigure", async () => {
    const { ctrl, consensus, client } = await setup();
    await commit(client, await proposal(client));
    ctrl.stopServer();
    await expectGone(client);
    await ctrl.startServer();
    expect((await proposal(client)).height).toBe(2n);

    ctrl.kill();
    expect(ctrl.running).toBe(false);
    await expectGone(client);
    await ctrl.start();
    await waitFor(() => ctrl.serving, 5000, "controller serving again");
    expect(ctrl.height).toBe(1);
    expect(consensus.reconfigures.map((c) => c.height)).toEqual([0n, 1n]);
    expect((await proposal(client)).height).toBe(2n);
  });
});

describe("sync", () => {
  /** Two controllers of one chain, each with its own fake consensus. */
  async function pair(bOpts: Partial<ControllerOptions> = {}) {
    const group = new ControllerGroup();
    const a = await setup({ group, address: A });
    const b = await setup({ group, address: B, ...bOpts });
    return { group, a, b };
  }

  async function advance(node: Awaited<ReturnType<typeof setup>>, blocks: number) {
    for (let i = 0; i < blocks; i++) {
      expect((await commit(node.client, await proposal(node.client))).status?.code).toBe(S.Success);
    }
  }

  test("a lagging controller fetches blocks from the highest peer with CheckBlock then Reconfigure per block", async () => {
    const { group, a, b } = await pair({ syncCheckIntervalMs: 50 });
    const change = group.scheduleConfigChange({ atHeight: 3, blockInterval: 1, validators: [A, B, C] });
    expect(change).toBe(3);
    b.ctrl.kill(); // b misses the blocks
    await advance(a, 5);
    b.consensus.reconfigures.length = 0;
    await b.ctrl.start();
    await waitFor(() => b.ctrl.height === 5 && !b.ctrl.syncing, 10_000, "b synced to 5");

    expect(b.consensus.checkBlocks.map((c) => c.height)).toEqual([1, 2, 3, 4, 5]);
    expect(toHex(b.consensus.checkBlocks[2].data)).toBe(toHex(a.ctrl.block(3)!.data));
    // The start-up Reconfigure (height 0), then one per synced block carrying that block's config.
    const seen = b.consensus.reconfigures.map((c) => [Number(c.height), c.blockInterval, c.validators.length]);
    expect(seen).toEqual([
      [0, 3, 2],
      [1, 3, 2],
      [2, 3, 2],
      [3, 1, 3],
      [4, 1, 3],
      [5, 1, 3],
    ]);
    expect(b.ctrl.chain().map((x) => x.hash)).toEqual(a.ctrl.chain().map((x) => x.hash));
    expect(b.ctrl.chain().slice(1).every((x) => x.source === "sync")).toBe(true);
    // Consensus committing a synced height afterwards is a no-op success.
    const late = await commit(b.client, { height: 5n, data: new Uint8Array() } as Proposal);
    expect(late.status?.code).toBe(S.Success);
    expect(b.ctrl.heightStats(5).repeatCommits).toBe(1);
  });

  test("TooHigh starts a sync, during which GetProposal answers NodeInSyncMode", async () => {
    const { a, b } = await pair(); // no periodic sync check: only TooHigh can start it
    await advance(a, 3);
    let open!: () => void;
    b.consensus.checkBlockGate = new Promise((r) => (open = r));
    const high = await commit(b.client, { height: 3n, data: new Uint8Array() } as Proposal);
    expect(high.status?.code).toBe(S.ProposalTooHigh);
    await waitFor(() => b.ctrl.syncing, 5000, "b syncing");
    expect((await b.client.getProposal({})).status?.code).toBe(S.NodeInSyncMode);
    open();
    await waitFor(() => b.ctrl.height === 3 && !b.ctrl.syncing, 5000, "b synced");
    expect((await b.client.getProposal({})).proposal?.height).toBe(4n);
  });

  test("CheckBlock refusals: a not-ready code pauses the sync, another code distrusts the peer", async () => {
    const { a, b } = await pair();
    await advance(a, 2);
    b.consensus.checkBlockCode = () => S.ConsensusServerNotReady;
    await commit(b.client, { height: 5n, data: new Uint8Array() } as Proposal);
    await waitFor(() => b.consensus.checkBlocks.length === 1 && !b.ctrl.syncing, 5000, "sync paused");
    expect(b.ctrl.height).toBe(0);

    b.consensus.checkBlockCode = () => S.ProposalCheckError;
    await commit(b.client, { height: 5n, data: new Uint8Array() } as Proposal);
    await waitFor(() => b.consensus.checkBlocks.length === 2 && !b.ctrl.syncing, 5000, "peer distrusted");
    expect(b.ctrl.height).toBe(0);
    expect(b.consensus.reconfigures).toHaveLength(1); // only the start-up one

    b.consensus.checkBlockCode = () => 0;
    await commit(b.client, { height: 5n, data: new Uint8Array() } as Proposal);
    await waitFor(() => b.ctrl.height === 2, 5000, "synced once consensus accepts");
  });

  test("a controller one block behind with a checked proposal waits for consensus instead of syncing", async () => {
    const { a, b } = await pair({ syncCheckIntervalMs: 30 });
    const p1 = await proposal(a.client);
    expect((await b.client.checkProposal(p1)).code).toBe(S.Success); // candidate at b
    expect((await commit(a.client, p1)).status?.code).toBe(S.Success);
    await Bun.sleep(300); // several sync checks pass
    expect(b.ctrl.height).toBe(0);
    expect(b.consensus.checkBlocks).toHaveLength(0);
    expect((await commit(b.client, p1)).status?.code).toBe(S.Success);
    expect(b.ctrl.heightStats(1).newCommits).toBe(1);
    expect(toHex(b.ctrl.head.hash)).toBe(toHex(a.ctrl.head.hash));
  });

  test("one whose height has not grown for a growth check interval drops its candidate and syncs", async () => {
    const { a, b } = await pair({ syncCheckIntervalMs: 30, growthCheckIntervalMs: 300 });
    const p1 = await proposal(a.client);
    expect((await b.client.checkProposal(p1)).code).toBe(S.Success); // candidate at b: it waits for its consensus
    expect((await commit(a.client, p1)).status?.code).toBe(S.Success);
    await waitFor(() => b.ctrl.height === 1 && !b.ctrl.syncing, 5000, "b synced to 1");
    expect(b.consensus.checkBlocks.map((c) => c.height)).toEqual([1]);
    expect(b.ctrl.chain()[1].source).toBe("sync");
  });
});

test("the genesis block is the same for every controller", async () => {
  const x = new ControllerEmulator({ address: A, genesis: GENESIS, consensusPort: 1 });
  const y = new ControllerEmulator({ address: B, genesis: GENESIS, consensusPort: 1 });
  expect(toHex(x.head.hash)).toBe(toHex(y.head.hash));
  expect(fromBinary(BlockHeaderSchema, toBinary(BlockHeaderSchema, x.head.header)).height).toBe(0n);
});
