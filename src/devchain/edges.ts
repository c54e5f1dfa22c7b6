// What the emulators exchange with the consensus next to them, and how they are reached. The
// emulators' logic only sees these interfaces; grpc-edges.ts implements them with real gRPC
// servers and clients on loopback, the chain simulator with simulated calls on a simulated clock.
// Failures are ConnectErrors either way (a refused connection is Code.Unavailable, a missed
// deadline Code.DeadlineExceeded), so the logic cannot tell the two edges apart.
import type {
  ConsensusConfiguration,
  ConsensusConfigurationResponse,
  Proposal,
  ProposalResponse,
  ProposalWithProof,
  StatusCode,
  TotalNodeNetInfo,
} from "../../gen/common_pb.ts";
import type { NetworkMsg, NetworkStatusResponse, RegisterInfo } from "../../gen/network_pb.ts";

/** One incoming call: its cancellation (client gone or deadline passed) and the caller's `client-name`. */
export interface IncomingCall {
  readonly signal: AbortSignal;
  readonly clientName?: string;
}

/** A service being served; closing it refuses new calls and cuts the open ones. */
export interface Listener {
  close(): void;
}

// ---------------------------------------------------------------- controller

/** The consensus calls a controller makes (consensus.ConsensusService). */
export interface ConsensusLink {
  reconfigure(cfg: ConsensusConfiguration, signal: AbortSignal): Promise<StatusCode>;
  checkBlock(pwp: ProposalWithProof, signal: AbortSignal): Promise<StatusCode>;
}

/** controller.Consensus2ControllerService, as the emulator implements it. */
export interface ControllerService {
  getProposal(call: IncomingCall): Promise<ProposalResponse>;
  checkProposal(p: Proposal, call: IncomingCall): Promise<StatusCode>;
  commitBlock(req: ProposalWithProof, call: IncomingCall): Promise<ConsensusConfigurationResponse>;
}

export interface ControllerEdge {
  readonly consensus: ConsensusLink;
  /** Where consensus reaches the controller, when the edge has ports (known after `prepare`). */
  readonly port?: number;
  /** Called by every start() before anything else (the gRPC edge picks a free port). */
  prepare?(): Promise<void>;
  /** Starts serving `service`; resolves once calls can arrive. */
  serve(service: ControllerService): Promise<Listener>;
}

// ---------------------------------------------------------------- network

/** network.NetworkService, as the network emulator implements it for one node. */
export interface NetworkServiceHandlers {
  sendMsg(msg: NetworkMsg, call: IncomingCall): StatusCode | Promise<StatusCode>;
  broadcast(msg: NetworkMsg, call: IncomingCall): StatusCode | Promise<StatusCode>;
  registerNetworkMsgHandler(info: RegisterInfo, call: IncomingCall): StatusCode | Promise<StatusCode>;
  getNetworkStatus(call: IncomingCall): NetworkStatusResponse;
  addNode(call: IncomingCall): StatusCode;
  getPeersNetInfo(call: IncomingCall): TotalNodeNetInfo;
}

export interface NetworkEdge {
  /** ProcessNetworkMsg of the node's consensus; rejects as a gRPC client would. */
  deliver(msg: NetworkMsg, signal: AbortSignal): Promise<void>;
  /** Where consensus reaches this network service, when the edge has ports (known after `serve`). */
  readonly port?: number;
  serve(service: NetworkServiceHandlers): Promise<Listener>;
}
