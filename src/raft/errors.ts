// Errors the core returns to its caller. Everything else it throws is a programming error.

export type RaftErrorKind =
  /** The proposal was not accepted (no leader, transfer in progress, size limit, removed). */
  | "ProposalDropped"
  /** A local-only message type arrived from outside. */
  | "StepLocalMsg"
  /** A response from a node that is not in the configuration. */
  | "StepPeerNotFound"
  /** A request_snapshot could not be issued now. */
  | "RequestSnapshotDropped"
  /** The configuration is invalid. */
  | "ConfigInvalid";

export class RaftError extends Error {
  constructor(readonly kind: RaftErrorKind, detail?: string) {
    super(detail ? `${kind}: ${detail}` : kind);
    this.name = "RaftError";
  }
}
