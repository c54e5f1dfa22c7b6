// Memory: a message the transport has handed to the network service is no longer held by the
// transport. (Found in the soak, bench/soak.ts: every node kept its last ~1,000 sent messages,
// Raft payloads included, whatever their size.)
import { describe, expect, test } from "bun:test";
import type { NetworkMsg } from "../../gen/network_pb.ts";
import { MessageType, newEntry, newMessage } from "../../src/raft/index.ts";
import { type NetworkOutlet, PeerTransport } from "../../src/peer/transport.ts";
import { captureLog } from "../support/capture-log.ts";

const SELF = 100n;
const PEER = 200n;

/** A network service that answers at once (optionally later) and keeps only weak references to what it got. */
class ForgetfulNetwork implements NetworkOutlet {
  readonly got: WeakRef<NetworkMsg>[] = [];
  readonly #held: Array<() => void> = [];
  hold = false;
  sendMsg(m: NetworkMsg) {
    this.got.push(new WeakRef(m));
    if (!this.hold) return Promise.resolve({ code: 0 });
    return new Promise((r) => this.#held.push(() => r({ code: 0 })));
  }
  broadcast(m: NetworkMsg) {
    return this.sendMsg(m);
  }
  release() {
    for (const r of this.#held.splice(0)) r();
  }
  /** How many of the messages it got are still reachable from somewhere, after a full GC. */
  async alive(): Promise<number> {
    // WeakRefs created in this job stay alive until it ends; collect a few times to be sure.
    for (let k = 0; k < 3; k++) {
      await Bun.sleep(0);
      Bun.gc(true);
    }
    return this.got.filter((w) => w.deref() !== undefined).length;
  }
}

/** A MsgAppend carrying one 4 KiB entry, as a block proposal would be. */
function append(i: number) {
  const entry = newEntry({ index: i, term: 3, data: new Uint8Array(4096).fill(i & 0xff) });
  return newMessage({ msgType: MessageType.MsgAppend, to: PEER, from: SELF, term: 3, entries: [entry] });
}

function setup(net: ForgetfulNetwork) {
  const transport = new PeerTransport({ selfId: SELF, network: net, log: captureLog().log, maxInFlight: 8 });
  transport.handleInbound({ type: "probe-resp", origin: 7n, id: PEER });
  return transport;
}

describe("sent messages are released", () => {
  test("one at a time, as a steady chain sends them", async () => {
    const net = new ForgetfulNetwork();
    const transport = setup(net);
    for (let i = 1; i <= 500; i++) {
      expect(transport.send(append(i))).toBe("queued");
      await transport.idle();
    }
    expect(net.got).toHaveLength(500);
    // A conservative stack scan may keep one or two alive by chance; the defect kept all of them.
    expect(await net.alive()).toBeLessThanOrEqual(5);
    // The transport itself is still in use, as in a running node (else it could be collected whole).
    expect(transport.send(append(0))).toBe("queued");
  });

  test("after a backlog that the network works off", async () => {
    const net = new ForgetfulNetwork();
    net.hold = true;
    const transport = setup(net);
    for (let i = 1; i <= 2000; i++) expect(transport.send(append(i))).toBe("queued");
    let idle = false;
    transport.idle().then(() => (idle = true));
    while (!idle) {
      net.release();
      await Bun.sleep(0);
    }
    expect(net.got).toHaveLength(2000);
    expect(await net.alive()).toBeLessThanOrEqual(5);
    // The transport itself is still in use, as in a running node (else it could be collected whole).
    expect(transport.send(append(0))).toBe("queued");
  });
});
