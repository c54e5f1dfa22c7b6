// The Raft core's one door: everything outside src/raft imports from here, nothing deeper.
// src/raft/README.md is the contract (how to start a node, the duties of a Ready).
export { RawNode, SnapshotStatus, type BasicStatus, type LightReady, type PeerProgress, type Ready, type Status } from "./raw-node.ts";
export { Raft, StateRole, STATE_ROLE_NAMES, type SoftState } from "./raft.ts";
export { type RaftConfig, NO_LIMIT, RAFT_TEST_BUGS, type RaftTestBug } from "./config.ts";
export { RaftError, type RaftErrorKind } from "./errors.ts";
export { type RaftLogger, NOOP_LOGGER } from "./logger.ts";
export { ReadOnlyOption, type ReadState } from "./read-only.ts";
export { type Storage, MemStorage, StorageError, type RaftState, cloneConfState, cloneSnapshot, fitCount, limitSize } from "./storage.ts";
export { ProgressState, PROGRESS_STATE_NAMES, type Progress } from "./tracker/progress.ts";
export { seededRandom, type RandomSource } from "./rand.ts";
export * from "./types.ts";
/** The eraftpb wire encoding of the core's types (the peer edge and storage use it). */
export * as codec from "./codec.ts";
