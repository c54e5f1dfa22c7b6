// The emulators' gRPC edges: the controller serves Consensus2ControllerService on a loopback port
// and dials its consensus' ConsensusService; a network endpoint serves NetworkService and delivers
// to its consensus' NetworkMsgHandlerService. Used by `consensus demo`, bench/ and the end-to-end
// tests; the chain simulator passes simulated edges instead.
import { ConsensusService } from "../../gen/consensus_pb.ts";
import { Consensus2ControllerService } from "../../gen/controller_pb.ts";
import { NetworkMsgHandlerService, NetworkService } from "../../gen/network_pb.ts";
import type { ControllerEdge, ControllerService, IncomingCall, Listener, NetworkEdge, NetworkServiceHandlers } from "./edges.ts";
import { freePorts, grpcClient, listenGrpc } from "./grpc.ts";

function incoming(ctx: { signal: AbortSignal; requestHeader: Headers }): IncomingCall {
  return { signal: ctx.signal, clientName: ctx.requestHeader.get("client-name") ?? undefined };
}

export interface GrpcControllerEdgeOptions {
  /** Where the local consensus serves ConsensusService (dialled on localhost). */
  readonly consensusPort: number;
  /** Own Consensus2ControllerService port; a free one is picked at the first start when absent. */
  readonly port?: number;
  /** Deadline of each call to consensus. */
  readonly callTimeoutMs: number;
}

export function grpcControllerEdge(opts: GrpcControllerEdgeOptions): ControllerEdge {
  const client = grpcClient(ConsensusService, opts.consensusPort, "controller", opts.callTimeoutMs);
  let port = opts.port;
  return {
    consensus: {
      reconfigure: (cfg, signal) => client.reconfigure(cfg, { signal }),
      checkBlock: (pwp, signal) => client.checkBlock(pwp, { signal }),
    },
    get port() {
      return port;
    },
    async prepare() {
      if (port === undefined) [port] = await freePorts(1);
    },
    async serve(service: ControllerService): Promise<Listener> {
      if (port === undefined) throw new Error("the controller's port is not known before prepare()");
      return listenGrpc((router) => {
        router.service(Consensus2ControllerService, {
          getProposal: (_req, ctx) => service.getProposal(incoming(ctx)),
          checkProposal: (req, ctx) => service.checkProposal(req, incoming(ctx)),
          commitBlock: (req, ctx) => service.commitBlock(req, incoming(ctx)),
        });
      }, port);
    },
  };
}

export interface GrpcNetworkEdgeOptions {
  /** Static route of module "consensus" (like `[[network_zenoh.modules]]`). */
  readonly consensusPort: number;
  /** Own NetworkService port; a free one at the first start when absent (then kept). */
  readonly port?: number;
  /** Deadline of each ProcessNetworkMsg call. */
  readonly callTimeoutMs: number;
}

export function grpcNetworkEdge(opts: GrpcNetworkEdgeOptions): NetworkEdge {
  const client = grpcClient(NetworkMsgHandlerService, opts.consensusPort, "network", opts.callTimeoutMs);
  let port = opts.port;
  return {
    async deliver(msg, signal) {
      await client.processNetworkMsg(msg, { signal });
    },
    get port() {
      return port;
    },
    async serve(h: NetworkServiceHandlers): Promise<Listener> {
      const server = await listenGrpc((router) => {
        router.service(NetworkService, {
          sendMsg: (msg, ctx) => h.sendMsg(msg, incoming(ctx)),
          broadcast: (msg, ctx) => h.broadcast(msg, incoming(ctx)),
          registerNetworkMsgHandler: (info, ctx) => h.registerNetworkMsgHandler(info, incoming(ctx)),
          getNetworkStatus: (_req, ctx) => h.getNetworkStatus(incoming(ctx)),
          addNode: (_req, ctx) => h.addNode(incoming(ctx)),
          getPeersNetInfo: (_req, ctx) => h.getPeersNetInfo(incoming(ctx)),
        });
      }, port ?? 0);
      port = server.port;
      return server;
    },
  };
}
