// A scriptable in-process controller for node unit tests: each call consults a queue of planned
// answers (default: success), and every call is recorded.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type ConsensusConfiguration,
  ConsensusConfigurationResponseSchema,
  ConsensusConfigurationSchema,
  type Proposal,
  ProposalResponseSchema,
  ProposalSchema,
  type ProposalWithProof,
  StatusCodeSchema,
} from "../../gen/common_pb.ts";
import type { ControllerClient } from "../../src/node/controller.ts";

export type Planned = number | "unavailable" | "hang";

export class FakeController implements ControllerClient {
  height = 0n;
  blockInterval = 3;
  validators: Uint8Array[] = [];
  readonly calls: { method: string; height?: bigint; data?: Uint8Array }[] = [];
  readonly committed: bigint[] = [];
  plan: { check: Planned[]; commit: Planned[]; get: Planned[] } = { check: [], commit: [], get: [] };
  /** Height of the proposal GetProposal returns (default: height + 1). */
  proposalHeight: bigint | undefined;

  config(height = this.height): ConsensusConfiguration {
    return create(ConsensusConfigurationSchema, { height, blockInterval: this.blockInterval, validators: this.validators });
  }

  private async outcome(q: Planned[], signal?: AbortSignal): Promise<number> {
    const p = q.shift() ?? 0;
    if (p === "unavailable") throw new ConnectError("connect ECONNREFUSED", Code.Unavailable);
    if (p === "hang") {
      await new Promise((_, reject) => signal?.addEventListener("abort", () => reject(new ConnectError("aborted", Code.Canceled))));
    }
    return p as number;
  }

  async getProposal(_req: unknown, opts?: { signal?: AbortSignal }) {
    this.calls.push({ method: "GetProposal" });
    const code = await this.outcome(this.plan.get, opts?.signal);
    if (code !== 0) return create(ProposalResponseSchema, { status: { code } });
    const height = this.proposalHeight ?? this.height + 1n;
    return create(ProposalResponseSchema, { status: { code: 0 }, proposal: create(ProposalSchema, { height, data: new Uint8Array([1, 2, 3]) }) });
  }

  async checkProposal(p: Proposal, opts?: { signal?: AbortSignal }) {
    this.calls.push({ method: "CheckProposal", height: p.height, data: p.data });
    const code = await this.outcome(this.plan.check, opts?.signal);
    if (code !== 0) return create(StatusCodeSchema, { code });
    return create(StatusCodeSchema, { code: p.height === this.height + 1n ? 0 : p.height <= this.height ? 129 : 128 });
  }

  async commitBlock(pp: ProposalWithProof, opts?: { signal?: AbortSignal }) {
    const h = pp.proposal?.height ?? 0n;
    this.calls.push({ method: "CommitBlock", height: h, data: pp.proposal?.data });
    const code = await this.outcome(this.plan.commit, opts?.signal);
    if (code !== 0) return create(ConsensusConfigurationResponseSchema, { status: { code }, config: this.config(h) });
    if (h === (1n << 64n) - 1n) return create(ConsensusConfigurationResponseSchema, { status: { code: 0 }, config: this.config() });
    if (h <= this.height) return create(ConsensusConfigurationResponseSchema, { status: { code: 0 }, config: this.config(h) });
    if (h > this.height + 1n) return create(ConsensusConfigurationResponseSchema, { status: { code: 128 }, config: this.config(h) });
    this.height = h;
    this.committed.push(h);
    return create(ConsensusConfigurationResponseSchema, { status: { code: 0 }, config: this.config() });
  }

  count(method: string): number {
    return this.calls.filter((c) => c.method === method).length;
  }
}
