// A stand-in for the CITA-Cloud network service: a Connect gRPC server of our own that records every
// SendMsg, Broadcast and RegisterNetworkMsgHandler call it receives.
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { type NetworkMsg, NetworkService, type RegisterInfo } from "../../gen/network_pb.ts";

export class FakeNetwork {
  readonly sent: NetworkMsg[] = [];
  readonly broadcasts: NetworkMsg[] = [];
  readonly registrations: RegisterInfo[] = [];
  /** Status code answered to registrations. */
  registerCode = 0;
  readonly #server: http2.Http2Server;
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  port = 0;

  constructor() {
    const routes = (router: ConnectRouter) =>
      router.service(NetworkService, {
        sendMsg: (m) => (this.sent.push(m), { code: 0 }),
        broadcast: (m) => (this.broadcasts.push(m), { code: 0 }),
        registerNetworkMsgHandler: (r) => (this.registrations.push(r), { code: this.registerCode }),
      });
    this.#server = http2.createServer(connectNodeAdapter({ routes, grpc: true, grpcWeb: false, connect: false }));
    this.#server.on("session", (s) => {
      this.#sessions.add(s);
      s.on("close", () => this.#sessions.delete(s));
    });
  }

  start(port = 0): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(port, "::", () => {
        this.port = (this.#server.address() as AddressInfo).port;
        resolve(this.port);
      });
    });
  }

  stop(): void {
    this.#server.close();
    for (const s of this.#sessions) s.destroy();
  }
}
