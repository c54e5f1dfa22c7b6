// One-time import of the state the Rust service (consensus_raft 6.7.x) leaves in raft_data_path
// (docs/compatibility.md): `raft-snapshot` (length-delimited eraftpb.Snapshot at the applied index,
// whose data is the ConsensusConfiguration), `raft-entry` (length-delimited eraftpb.Entry, or
// empty: the last block appended, at the applied index or just after it) and `abort_height`
// (decimal u64). Decoding is all-or-nothing: any undecodable file stops the start, and it is
// decoded before the database is created, so a refused import leaves the data dir as it was.
import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import type { ConsolaInstance } from "consola";
import fs from "node:fs";
import path from "node:path";
import { ConsensusConfigurationSchema } from "../../gen/common_pb.ts";
import { EntryType, codec } from "../raft/index.ts";
import { StorageOpenError } from "./errors.ts";
import { type DurableState, freshState } from "./state.ts";

export const LEGACY_SNAPSHOT = "raft-snapshot";
export const LEGACY_ENTRY = "raft-entry";
export const LEGACY_ABORT_HEIGHT = "abort_height";
const LEGACY_FILES = [LEGACY_SNAPSHOT, LEGACY_ENTRY, LEGACY_ABORT_HEIGHT];
/** Suffix given to legacy files after a successful import, so the next start does not import again. */
export const IMPORTED_SUFFIX = ".imported";
const U64_MAX = (1n << 64n) - 1n;

export interface LegacyImport {
  /** The state to initialise the database with. */
  state: DurableState;
  /** What was imported, for the log. */
  summary: Record<string, string | number>;
  /** Paths of the legacy files that were read. */
  files: string[];
}

/** Legacy files present in `dir` (by name). */
export function leftoverLegacyFiles(dir: string): string[] {
  return LEGACY_FILES.filter((f) => fs.existsSync(path.join(dir, f)));
}

/** Reads and decodes the legacy files in `dir`; undefined when there are none. */
export function readLegacy(dir: string): LegacyImport | undefined {
  const present = leftoverLegacyFiles(dir);
  if (present.length === 0) return undefined;
  const state = freshState();
  const summary: Record<string, string | number> = {};
  const read = (name: string): Uint8Array | undefined => {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) return undefined;
    try {
      return fs.readFileSync(file);
    } catch (e) {
      throw new StorageOpenError(`cannot read legacy ${file}: ${(e as Error).message}`);
    }
  };
  const fail = (name: string, why: string) =>
    new StorageOpenError(`cannot import legacy ${path.join(dir, name)}: ${why}; nothing was imported (fix the file or move it away)`);

  const snapBytes = read(LEGACY_SNAPSHOT);
  if (snapBytes !== undefined && snapBytes.length === 0) {
    // The Rust service treats an empty snapshot file as absent (it truncates before rewriting).
    summary.snapshot = "empty file, none imported";
  } else if (snapBytes !== undefined) {
    const snap = decode(LEGACY_SNAPSHOT, fail, () => codec.decodeSnapshot(delimited(snapBytes)));
    const { index, term, confState } = snap.metadata;
    const config = decode(LEGACY_SNAPSHOT, fail, () => fromBinary(ConsensusConfigurationSchema, snap.data), "its data is not a ConsensusConfiguration");
    Object.assign(state, {
      hardState: { term, vote: 0n, commit: index },
      confState,
      appliedIndex: index,
      appliedTerm: term,
      chainConfigBytes: snap.data,
      compactedIndex: index,
      compactedTerm: term,
    });
    Object.assign(summary, {
      snapshot_index: index,
      snapshot_term: term,
      voters: confState.voters.join(","),
      height: config.height.toString(),
      block_interval: config.blockInterval,
      validators: config.validators.length,
    });
  }

  const entryBytes = read(LEGACY_ENTRY);
  if (entryBytes !== undefined && entryBytes.length > 0) {
    const entry = decode(LEGACY_ENTRY, fail, () => codec.decodeEntry(delimited(entryBytes)));
    if (entry.index === state.appliedIndex + 1 && entry.term >= state.appliedTerm) {
      // As in the Rust recovery: the entry is uncommitted; a leader confirms or replaces it.
      state.entries.push(entry);
      summary.entry = `index ${entry.index} term ${entry.term}`;
    } else if (entry.index === state.appliedIndex && state.appliedIndex > 0) {
      // The block the Rust service applied last. Its controller (no WAL since v6.7.0) may have
      // lost it in a power loss: keep it beside the log, for the committer to commit it again.
      if (entry.term === state.appliedTerm && entry.entryType === EntryType.EntryNormal && entry.data.length > 0) {
        state.recommitEntry = entry;
        summary.entry = `index ${entry.index} term ${entry.term}, the applied block: kept to be committed again`;
      } else {
        summary.entry = `ignored index ${entry.index} term ${entry.term}: not the applied block (snapshot ${state.appliedIndex}, term ${state.appliedTerm})`;
      }
    } else {
      summary.entry = `ignored index ${entry.index} term ${entry.term}: it does not follow the snapshot (${state.appliedIndex}, term ${state.appliedTerm})`;
    }
  } else if (entryBytes !== undefined) {
    summary.entry = "none (empty file)";
  }

  const abortBytes = read(LEGACY_ABORT_HEIGHT);
  if (abortBytes !== undefined) {
    const text = new TextDecoder().decode(abortBytes).trim();
    if (text === "") {
      summary.abort_height = "empty file, 0";
    } else {
      if (!/^\d{1,20}$/.test(text) || BigInt(text) > U64_MAX) throw fail(LEGACY_ABORT_HEIGHT, `"${text.slice(0, 40)}" is not a decimal u64`);
      state.abortHeight = BigInt(text);
      summary.abort_height = text;
    }
  }
  return { state, summary, files: present.map((f) => path.join(dir, f)) };
}

/** Renames imported files to `*.imported`; they stay for the operator, but are never read again. */
export function markImported(files: string[], log?: ConsolaInstance): void {
  for (const f of files) {
    try {
      fs.renameSync(f, f + IMPORTED_SUFFIX);
    } catch (e) {
      log?.warn("cannot rename imported legacy file; it will be ignored", { file: f, error: (e as Error).message });
    }
  }
}

/** The message of a length-delimited protobuf file: varint length, then exactly that many bytes. */
function delimited(buf: Uint8Array): Uint8Array {
  const r = new BinaryReader(buf);
  const msg = r.bytes();
  if (r.pos !== buf.length) throw new Error(`${buf.length - r.pos} bytes after the length-delimited message`);
  return msg;
}

function decode<T>(name: string, fail: (name: string, why: string) => Error, f: () => T, what?: string): T {
  try {
    return f();
  } catch (e) {
    throw fail(name, what ? `${what} (${(e as Error).message})` : (e as Error).message);
  }
}
