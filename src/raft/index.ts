// Public surface of the Raft core.
export { RawNode, SnapshotStatus, type LightReady, type Ready, type Status } from "./raw-node.ts";
export { Raft, StateRole, STATE_ROLE_NAMES, type SoftState } from "./raft.ts";
export { type RaftConfig, NO_LIMIT } from "./config.ts";
export { RaftError, type RaftErrorKind } from "./errors.ts";
export { type RaftLogger, NOOP_LOGGER } from "./logger.ts";
export { ReadOnlyOption, type ReadState } from "./read-only.ts";
export { type Storage, MemStorage, StorageError, type RaftState } from "./storage.ts";
export { ProgressState, type Progress } from "./tracker/progress.ts";
export { seededRandom, type RandomSource } from "./rand.ts";
export * from "./types.ts";
export * as codec from "./codec.ts";
