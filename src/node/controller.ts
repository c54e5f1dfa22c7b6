// The controller calls the node makes (a Connect Consensus2ControllerService client fits).
import type { CallOptions } from "@connectrpc/connect";
import type { ConsensusConfigurationResponse, Empty, Proposal, ProposalResponse, ProposalWithProof, StatusCode } from "../../gen/common_pb.ts";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { EmptySchema } from "../../gen/common_pb.ts";

export interface ControllerClient {
  getProposal(req: Empty | MessageInitShape<typeof EmptySchema>, opts?: CallOptions): Promise<ProposalResponse>;
  checkProposal(req: Proposal, opts?: CallOptions): Promise<StatusCode>;
  commitBlock(req: ProposalWithProof, opts?: CallOptions): Promise<ConsensusConfigurationResponse>;
}
