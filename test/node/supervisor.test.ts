import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChainConfig } from "../../src/node/chain-config.ts";
import type { RaftPeer } from "../../src/node/raft-peer.ts";
import { systemClock } from "../../src/node/ports.ts";
import { Supervisor } from "../../src/node/supervisor.ts";
import { peerIdFromAddress } from "../../src/peer/peer-id.ts";
import { newConfState, newSnapshot } from "../../src/raft/index.ts";
import { SqliteStorage } from "../../src/storage/sqlite.ts";
import { captureLog } from "../support/capture-log.ts";
import { serviceConfig } from "../support/service-config.ts";
import { waitUntil } from "../support/wait-until.ts";
import { FakeController } from "./fake-controller.ts";

const ME = Uint8Array.from(Buffer.from("f805cf7df8dffc4fd9c98791d72d00c9587dc1d9", "hex"));
const OTHER = Uint8Array.from(Buffer.from("0000000000000000000000000000000000000001", "hex"));

class StubPeer {
  started = 0;
  stopped = 0;
  offered: bigint[] = [];
  constructor(public config: ChainConfig) {}
  start() {
    this.started++;
  }
  async stop() {
    this.stopped++;
  }
  offerConfig(c: ChainConfig) {
    this.offered.push(c.height);
    if (c.height > this.config.height) this.config = c;
  }
  chainConfig() {
    return this.config;
  }
  /** Committed entries waiting for the controller. */
  backlog = 0;
  /** Time since any peer talked to it. */
  silentMs = 0;
  status() {
    return { committerBacklog: this.backlog };
  }
  msSinceHeardFromValidators() {
    return this.silentMs;
  }
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function setup(dir = mkdtempSync(join(tmpdir(), "supervisor-")), makePeerFails?: Error) {
  dirs.push(dir);
  const storage = SqliteStorage.open(dir);
  const controller = new FakeController();
  const peers: StubPeer[] = [];
  const fatal: unknown[] = [];
  const sup = new Supervisor({
    fatal: (e) => fatal.push(e),
    settings: serviceConfig({ grpcListenPort: 1, networkPort: 2, nodeAddress: ME }),
    log: captureLog().log,
    storage,
    controller,
    clock: systemClock,
    periodMs: 60_000, // rounds only on kick(): the tests drive them
    makePeer: (trigger) => {
      if (makePeerFails) throw makePeerFails;
      const p = new StubPeer(trigger);
      peers.push(p);
      return p as unknown as RaftPeer;
    },
  });
  return { sup, storage, controller, peers, dir, fatal };
}

const cfg = (height: bigint, validators: Uint8Array[]) => ({ ...new FakeController().config(height), validators });

describe("supervisor", () => {
  test("without Reconfigure it pings the controller (CommitBlock u64::MAX) and starts a peer for a validator", async () => {
    const t = setup();
    t.controller.validators = [OTHER, ME];
    t.controller.height = 7n;
    t.sup.start();
    await waitUntil(() => t.peers.length === 1, "a peer");
    expect(t.controller.calls[0]).toMatchObject({ method: "CommitBlock", height: (1n << 64n) - 1n });
    expect(t.peers[0].config.height).toBe(7n);
    expect(t.peers[0].started).toBe(1);
    await t.sup.stop(0);
    t.storage.close();
  });

  test("an unreachable controller is pinged again until it answers", async () => {
    const t = setup();
    t.controller.plan.commit = ["unavailable", "unavailable"];
    t.controller.validators = [ME];
    t.sup.start();
    for (let i = 0; i < 3; i++) (t.sup as unknown as { kick(): void }).kick();
    await waitUntil(async () => {
      (t.sup as unknown as { kick(): void }).kick();
      return t.peers.length === 1;
    }, "a peer after the controller came up");
    expect(t.controller.count("CommitBlock")).toBeGreaterThanOrEqual(3);
    await t.sup.stop(0);
    t.storage.close();
  });

  test("a node that is not a validator runs no peer; Reconfigure making it one starts it; lower heights are ignored", async () => {
    const t = setup();
    t.controller.validators = [OTHER];
    t.sup.start();
    await waitUntil(() => t.controller.count("CommitBlock") === 1, "the ping");
    expect(t.peers).toHaveLength(0);
    t.sup.onReconfigure(cfg(10n, [ME]));
    t.sup.onReconfigure(cfg(9n, [OTHER])); // older: ignored
    await waitUntil(() => t.peers.length === 1, "a peer");
    expect(t.peers[0].config.height).toBe(10n);
    await t.sup.stop(0);
    t.storage.close();
  });

  test("a removed validator keeps its peer until height >= last validator height + 2, persisted across restarts", async () => {
    const t = setup();
    t.sup.start();
    t.sup.onReconfigure(cfg(100n, [ME, OTHER]));
    await waitUntil(() => t.peers.length === 1, "a peer");
    const peer = t.peers[0];
    peer.config = cfg(101n, [OTHER]); // the block at 101 removed this node
    (t.sup as unknown as { kick(): void }).kick();
    await waitUntil(() => t.storage.abortHeight() === 102n, "the persisted abort height");
    expect(peer.stopped).toBe(0); // 101 < 102: still needed for the removal to complete
    await t.sup.stop(0);
    t.storage.close();

    // A restart inside the window starts the peer again (the Rust service's abort_height file).
    const again = setup(t.dir);
    again.controller.validators = [OTHER];
    again.controller.height = 101n;
    again.sup.start();
    await waitUntil(() => again.peers.length === 1, "a peer after restart");
    again.peers[0].config = cfg(102n, [OTHER]);
    (again.sup as unknown as { kick(): void }).kick();
    await waitUntil(() => again.peers[0].stopped === 1, "the peer aborted at the window's end");
    await again.sup.stop(0);
    again.storage.close();
  });

  test("a removal seen many blocks after the last round still waits for the next block (rounds are 3 s apart)", async () => {
    const t = setup();
    t.sup.start();
    t.sup.onReconfigure(cfg(100n, [ME, OTHER]));
    await waitUntil(() => t.peers.length === 1, "a peer");
    const peer = t.peers[0];
    // Between two rounds the chain went on to 110, and the block at 110 removed this node: the
    // window from height 100 (ends at 102) would abort the peer before the removal is committed.
    peer.config = cfg(110n, [OTHER]);
    (t.sup as unknown as { kick(): void }).kick();
    await waitUntil(() => t.storage.abortHeight() === 111n, "the persisted abort height");
    expect(peer.stopped).toBe(0);
    peer.config = cfg(111n, [OTHER]);
    (t.sup as unknown as { kick(): void }).kick();
    await waitUntil(() => peer.stopped === 1, "the peer aborted once the next block is in");
    await t.sup.stop(0);
    t.storage.close();
  });

  test("stopping while the controller accepts the ping and never answers returns at once", async () => {
    const t = setup();
    t.controller.plan.commit = ["hang"];
    t.sup.start();
    await waitUntil(() => t.controller.count("CommitBlock") === 1, "the ping in flight");
    const started = performance.now();
    await t.sup.stop(0);
    expect(performance.now() - started).toBeLessThan(500);
    expect(t.fatal).toEqual([]);
    t.storage.close();
  });

  test("a round that cannot make a peer (storage) stops the node instead of retrying while reporting SERVING", async () => {
    const t = setup(undefined, new Error("raft database x: bootstrap failed: disk I/O error"));
    t.controller.validators = [ME];
    t.sup.start();
    await waitUntil(() => t.fatal.length === 1, "the fatal error");
    expect((t.fatal[0] as Error).message).toContain("disk I/O error");
    (t.sup as unknown as { kick(): void }).kick();
    await Bun.sleep(20);
    expect(t.controller.count("CommitBlock")).toBe(1); // no further rounds
    expect(t.fatal).toHaveLength(1);
    t.storage.close();
  });

  test("a validator round persists the abort window, so a restart before the removal is seen still knows it", async () => {
    const t = setup();
    t.sup.start();
    t.sup.onReconfigure(cfg(40n, [ME, OTHER]));
    await waitUntil(() => t.storage.abortHeight() === 42n, "the abort height written in a validator round");
    await t.sup.stop(0);
    t.storage.close();
  });

  test("a node off the list keeps its peer while committed blocks are still on their way to its controller", async () => {
    const t = setup();
    t.sup.start();
    t.sup.onReconfigure(cfg(100n, [ME, OTHER]));
    await waitUntil(() => t.peers.length === 1, "a peer");
    const peer = t.peers[0];
    peer.config = cfg(110n, [OTHER]); // the removal, seen late: the window now ends at 111
    const kick = () => (t.sup as unknown as { kick(): void }).kick();
    kick();
    await Bun.sleep(20);
    peer.backlog = 3; // one of these blocks may list this node again
    peer.config = cfg(111n, [OTHER]);
    kick();
    await Bun.sleep(20);
    expect(peer.stopped).toBe(0);
    peer.backlog = 0;
    kick();
    await waitUntil(() => peer.stopped === 1, "the abort once they are applied");
    await t.sup.stop(0);
    t.storage.close();
  });

  test("a node off the list that is still a voter of its applied configuration stays while peers talk to it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "supervisor-"));
    const pre = SqliteStorage.open(dir);
    pre.persist({ snapshot: newSnapshot(5, 5, newConfState({ voters: [peerIdFromAddress(ME), peerIdFromAddress(OTHER)] })) });
    pre.close();
    const t = setup(dir);
    t.controller.validators = [OTHER];
    t.controller.height = 500n; // far beyond any abort window
    t.sup.start();
    await waitUntil(() => t.peers.length === 1, "a peer: the removal is not applied here, the others may need this vote");
    const kick = () => (t.sup as unknown as { kick(): void }).kick();
    t.peers[0].silentMs = 1_000;
    kick();
    await Bun.sleep(20);
    expect(t.peers[0].stopped).toBe(0);
    t.peers[0].silentMs = 10 * 60_000; // nobody has talked to it for ten election timeouts
    kick();
    await waitUntil(() => t.peers[0].stopped === 1, "it leaves raft");
    kick();
    await Bun.sleep(20);
    expect(t.peers).toHaveLength(1); // and does not come back until it is a validator again
    await t.sup.stop(0);
    t.storage.close();
  });
});
