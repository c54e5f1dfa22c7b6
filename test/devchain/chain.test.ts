// The chain harness: node files and ports, controllers and network wired to (fake) consensus
// endpoints, the fork check, and spawning consensus processes (a small fake script stands in
// for the real binary).
import { afterEach, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { create } from "@bufbuild/protobuf";
import { ProposalWithProofSchema } from "../../gen/common_pb.ts";
import { ConsensusService } from "../../gen/consensus_pb.ts";
import { Consensus2ControllerService } from "../../gen/controller_pb.ts";
import { NetworkMsgHandlerService, NetworkService, type NetworkMsg } from "../../gen/network_pb.ts";
import { loadConfig } from "../../src/config/load.ts";
import { DevChain, type DevChainOptions } from "../../src/devchain/chain.ts";
import { grpcClient, listenGrpc, type GrpcServer } from "../../src/devchain/grpc.ts";
import { waitFor } from "../../src/devchain/wait.ts";

const chains: DevChain[] = [];
const servers: GrpcServer[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) s.close();
  for (const c of chains.splice(0)) await c.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function chain(opts: DevChainOptions): Promise<DevChain> {
  const c = await DevChain.create({ controller: { retryIntervalMs: 50, syncCheckIntervalMs: 60_000 }, ...opts });
  chains.push(c);
  return c;
}

/** In-process stand-ins for the consensus of every node: ack Reconfigure, record peer messages. */
async function fakeConsensus(c: DevChain): Promise<NetworkMsg[][]> {
  const inbox: NetworkMsg[][] = c.nodes.map(() => []);
  for (const n of c.nodes) {
    servers.push(
      await listenGrpc((r) => {
        r.service(ConsensusService, { reconfigure: () => ({ code: 0 }), checkBlock: () => ({ code: 0 }) });
        r.service(NetworkMsgHandlerService, {
          processNetworkMsg: (m) => {
            inbox[n.index].push(m);
            return { code: 0 };
          },
        });
      }, n.ports.grpc),
    );
  }
  return inbox;
}

/** What a Raft cluster does per block: the leader's proposal is checked and committed on every node. */
async function commitEverywhere(c: DevChain, leader: number, on = c.nodes.map((n) => n.index)): Promise<void> {
  const clients = c.nodes.map((n) => grpcClient(Consensus2ControllerService, n.ports.controller, "consensus", 3000));
  const { proposal } = await clients[leader].getProposal({});
  for (const i of on) {
    expect((await clients[i].checkProposal(proposal!)).code).toBe(0);
    const r = await clients[i].commitBlock(create(ProposalWithProofSchema, { proposal, proof: new Uint8Array() }));
    expect(r.status?.code).toBe(0);
  }
}

test("create writes each node's address file and a config.toml our loader accepts, with distinct ports", async () => {
  const c = await chain({ nodes: 3, seed: "files", startControllers: false, blockInterval: 2, validators: [0, 2] });
  const ports = c.nodes.flatMap((n) => Object.values(n.ports));
  expect(new Set(ports).size).toBe(12);
  for (const n of c.nodes) {
    expect(readFileSync(join(n.dir, "node_address"), "utf8")).toBe(n.addressHex);
    expect(n.addressHex).toMatch(/^[0-9a-f]{40}$/);
    const before = process.cwd();
    process.chdir(n.dir); // node_addr is relative to the working dir, as in the pod (/data)
    try {
      const { config, warnings } = loadConfig("config.toml");
      expect(warnings).toEqual([]);
      expect(Buffer.from(config.nodeAddress).toString("hex")).toBe(n.addressHex);
      expect([config.grpcListenPort, config.controllerPort, config.networkPort, config.metricsPort]).toEqual([
        n.ports.grpc,
        n.ports.controller,
        n.ports.network,
        n.ports.metrics,
      ]);
      expect(config.electionTick).toBeGreaterThan(config.heartbeatTick);
      expect(config.raftDataPath).toBe("raft-data-dir");
    } finally {
      process.chdir(before);
    }
  }
  expect(c.controllers[0].config.blockInterval).toBe(2);
  expect(c.controllers[0].config.validators.map((v) => Buffer.from(v).toString("hex"))).toEqual([
    c.node(0).addressHex,
    c.node(2).addressHex,
  ]);

  const same = await chain({ nodes: 3, seed: "files", startControllers: false });
  const other = await chain({ nodes: 3, seed: "other", startControllers: false });
  expect(same.nodes.map((n) => n.addressHex)).toEqual(c.nodes.map((n) => n.addressHex));
  expect(other.nodes.map((n) => n.addressHex)).not.toEqual(c.nodes.map((n) => n.addressHex));
  await expect(DevChain.create({ nodes: 2, validators: [2] })).rejects.toThrow(/validator index 2 is not a node/);
  await expect(DevChain.create({ nodes: 0 })).rejects.toThrow(/at least 1 node/);
});

test("controllers and network serve fake consensus endpoints; blocks commit everywhere; config changes apply", async () => {
  const c = await chain({ nodes: 3, seed: "flow" });
  const inbox = await fakeConsensus(c);
  await waitFor(() => c.controllers.every((x) => x.serving), 10_000, "all controllers serving");

  const net0 = grpcClient(NetworkService, c.node(0).ports.network, "consensus", 3000);
  await net0.sendMsg({ module: "consensus", type: "raft", origin: c.node(2).origin, msg: new Uint8Array([1]) });
  await c.fabric.waitIdle(5000);
  expect(inbox[2].map((m) => m.origin)).toEqual([c.node(0).origin]);
  expect(inbox[1]).toHaveLength(0);

  for (let i = 0; i < 3; i++) await commitEverywhere(c, 0);
  await c.waitForHeight(3, 5000);
  expect(c.heights()).toEqual([3, 3, 3]);
  expect(c.forkCheck()).toEqual([]);
  for (const x of c.controllers) expect(x.heightStats(2).newCommits).toBe(1);

  const at = c.setValidators([1, 2]);
  expect(at).toBe(4);
  expect(c.setBlockInterval(5, 2)).toBe(4); // raised above the current height
  await commitEverywhere(c, 1);
  for (const x of c.controllers) {
    expect(x.config.blockInterval).toBe(5);
    expect(x.config.validators.map((v) => Buffer.from(v).toString("hex"))).toEqual([c.node(1).addressHex, c.node(2).addressHex]);
  }
  c.assertNoFork();
});

test("the fork check finds heights where controllers committed different blocks", async () => {
  const c = await chain({ nodes: 3, seed: "fork" });
  await fakeConsensus(c);
  await waitFor(() => c.controllers.every((x) => x.serving), 10_000, "all controllers serving");
  await commitEverywhere(c, 0);
  // Nodes 0 and 1 each commit their own proposal at height 2: the controllers accept both.
  await commitEverywhere(c, 0, [0]);
  await commitEverywhere(c, 1, [1]);
  const forks = c.forkCheck();
  expect(forks.map((f) => f.height)).toEqual([2]);
  expect(Object.keys(forks[0].hashes).sort()).toEqual(["controller0", "controller1"]);
  expect(() => c.assertNoFork()).toThrow(/fork at 1 height\(s\), first at 2/);
});

// A stand-in consensus process: reads config.toml from its working dir like the real one, serves
// ConsensusService on grpc_listen_port, exits 0 on SIGTERM, and exits 3 when given --crash.
const FAKE_CONSENSUS = `
import { listenGrpc } from ${JSON.stringify(resolve(import.meta.dir, "../../src/devchain/grpc.ts"))};
import { ConsensusService } from ${JSON.stringify(resolve(import.meta.dir, "../../gen/consensus_pb.ts"))};
const args = process.argv.slice(2);
if (args.includes("--crash")) process.exit(3);
const cfg = Bun.TOML.parse(await Bun.file("config.toml").text()).consensus_raft;
const address = await Bun.file(cfg.node_addr).text();
await listenGrpc((r) => r.service(ConsensusService, {
  reconfigure: (c) => { console.log("reconfigure", c.height); return { code: 0 }; },
  checkBlock: () => ({ code: 0 }),
}), cfg.grpc_listen_port);
console.log("fake consensus up", address, JSON.stringify(args));
process.on("SIGTERM", () => process.exit(0));
`;

test("consensus processes are spawned in the node dir, stopped, killed and restarted; exits are recorded", async () => {
  const scripts = mkdtempSync(join(tmpdir(), "devchain-fake-"));
  dirs.push(scripts);
  const script = join(scripts, "fake-consensus.ts");
  writeFileSync(script, FAKE_CONSENSUS);
  const c = await chain({ nodes: 1, seed: "procs", consensusCommand: [process.execPath, script] });
  const ctrl = c.controllers[0];
  const ups = () => readFileSync(c.node(0).logPath, "utf8").split("fake consensus up").length - 1;

  c.startConsensus(0);
  expect(() => c.startConsensus(0)).toThrow(/already running/);
  await waitFor(() => ctrl.serving, 15_000, "controller reconfigured the spawned consensus");
  expect(await c.stopConsensus(0)).toBe(0);
  expect(c.isConsensusRunning(0)).toBe(false);
  expect(c.exits).toEqual([{ node: 0, code: 0, signal: null, unexpected: false }]);
  const log = readFileSync(c.node(0).logPath, "utf8");
  expect(log).toContain(`fake consensus up ${c.node(0).addressHex} ["run","-c","config.toml","--stdout"]`);

  mkdirSync(join(c.node(0).dir, "raft-data-dir"));
  c.wipeConsensusData(0);
  expect(existsSync(join(c.node(0).dir, "raft-data-dir"))).toBe(false);

  c.startConsensus(0);
  expect(() => c.wipeConsensusData(0)).toThrow(/stop consensus before wiping/);
  await waitFor(() => ups() === 2, 15_000, "second start up");
  await c.killConsensus(0);
  await waitFor(() => c.exits.length === 2, 5000, "kill recorded");
  expect(c.exits[1]).toMatchObject({ signal: "SIGKILL", code: null, unexpected: false });

  c.startConsensus(0, ["--crash"]);
  await waitFor(() => c.exits.length === 3, 15_000, "crash recorded");
  expect(c.exits[2]).toEqual({ node: 0, code: 3, signal: null, unexpected: true });

  c.startConsensus(0);
  await waitFor(() => ups() === 3, 15_000, "third start up");
  await c.restartConsensus(0);
  await waitFor(() => ups() === 4, 15_000, "restarted");
  expect(c.isConsensusRunning(0)).toBe(true);

  const bare = await chain({ nodes: 1, seed: "bare", startControllers: false });
  expect(() => bare.startConsensus(0)).toThrow(/no consensusCommand/);
}, 60_000);
