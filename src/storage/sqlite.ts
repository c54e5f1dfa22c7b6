// Durable Raft storage on bun:sqlite: the core's read-only Storage plus the write side the node
// uses after each Ready (persist) and each apply. Every write is one transaction, committed (and
// fsynced with synchronous=FULL) before the call returns; the whole retained log is mirrored in
// memory, so the Raft hot path (entries, term, first/last index) never touches SQLite.
import type { Database, Statement } from "bun:sqlite";
import type { ConsolaInstance } from "consola";
import fs from "node:fs";
import path from "node:path";
import { type RaftState, StorageError, cloneConfState, fitCount, type ConfState, type Entry, type HardState, type NodeId, type Snapshot, NONE, isEmptySnapshot, codec } from "../raft/index.ts";
import { SCHEMA_VERSION, type SyncMode, closeQuietly, createSchema, openDatabase } from "./db.ts";
import { StorageOpenError, StorageWriteError, describeSqliteError } from "./errors.ts";
import { decodeEntries, encodeEntries } from "./frame.ts";
import { leftoverLegacyFiles, markImported, readLegacy } from "./legacy.ts";
import type { ApplyUpdate, NodeStorage, PersistBatch } from "./node-storage.ts";
import { type DurableState, freshState, inconsistency } from "./state.ts";

export const DB_FILE = "raft.sqlite";
const U64_MAX = (1n << 64n) - 1n;

export interface OpenOptions {
  /** FULL (default) fsyncs every commit; NORMAL may lose the last commits on power loss, never on a process crash. */
  synchronous?: SyncMode;
  log?: ConsolaInstance;
}

export class SqliteStorage implements NodeStorage {
  private closed = false;
  private readonly insertBatch: Statement;
  private readonly deleteLog: Statement;
  private readonly deleteBatchesFrom: Statement;
  private readonly deleteBatchesBelow: Statement;
  private readonly setHardState: Statement;
  private readonly setApplied: Statement;
  private readonly setCompacted: Statement;
  private readonly setSnapshot: Statement;
  private readonly setAbort: Statement;
  private readonly setChainConfigStmt: Statement;

  /** The synchronous mode the connection is in now (see write()). */
  private syncNow: SyncMode;

  private constructor(
    /** Path of the database file, for messages. */
    readonly file: string,
    private readonly db: Database,
    private readonly s: DurableState,
    /** The mode of the writes Raft's safety depends on: FULL fsyncs each of them. */
    private readonly syncMode: SyncMode,
  ) {
    this.syncNow = syncMode;
    this.insertBatch = db.prepare("INSERT INTO log (first_index, last_index, entries) VALUES (?, ?, ?)");
    this.deleteLog = db.prepare("DELETE FROM log");
    this.deleteBatchesFrom = db.prepare("DELETE FROM log WHERE last_index >= ? RETURNING first_index");
    // first_index < x narrows the scan to the primary key range.
    this.deleteBatchesBelow = db.prepare("DELETE FROM log WHERE first_index < ?1 AND last_index < ?1");
    this.setHardState = db.prepare("UPDATE raft_state SET hard_state = ? WHERE id = 1");
    this.setApplied = db.prepare(
      "UPDATE raft_state SET applied_index = ?1, applied_term = ?2, state_machine = coalesce(?3, state_machine), " +
        "conf_state = coalesce(?4, conf_state), hard_state = coalesce(?5, hard_state), recommit_entry = NULL WHERE id = 1",
    );
    this.setCompacted = db.prepare("UPDATE raft_state SET compacted_index = ?, compacted_term = ? WHERE id = 1");
    this.setSnapshot = db.prepare(
      "UPDATE raft_state SET conf_state = ?1, applied_index = ?2, applied_term = ?3, state_machine = ?4, " +
        "compacted_index = ?2, compacted_term = ?3, recommit_entry = NULL WHERE id = 1",
    );
    this.setAbort = db.prepare("UPDATE raft_state SET abort_height = ? WHERE id = 1");
    this.setChainConfigStmt = db.prepare("UPDATE raft_state SET state_machine = ? WHERE id = 1");
  }

  /**
   * Opens (creating if needed) `<dir>/raft.sqlite`. On a fresh database, state left by the Rust
   * service in `dir` is imported first. Throws StorageOpenError with one readable line.
   */
  static open(dir: string, opts: OpenOptions = {}): SqliteStorage {
    const file = path.join(dir, DB_FILE);
    const log = opts.log;
    // A first start: decode the Rust service's files before the database exists, so a refused
    // import creates nothing (the operator fixes the file and starts again).
    const early = fs.existsSync(file) ? undefined : readLegacy(dir);
    if (early) {
      const bad = inconsistency(early.state);
      if (bad) throw new StorageOpenError(`cannot import legacy files in ${dir}: ${bad}; nothing was imported (fix the file or move it away)`);
    }
    const syncMode = opts.synchronous ?? "FULL";
    const { db, fresh, migratedFrom } = openDatabase(dir, file, syncMode);
    try {
      if (migratedFrom !== undefined) log?.info("raft database migrated", { file, from_version: migratedFrom, to_version: SCHEMA_VERSION });
      let state: DurableState;
      if (fresh) {
        // (Read now when the file was there already: an earlier first start that stopped early.)
        const legacy = early ?? readLegacy(dir);
        state = legacy?.state ?? freshState();
        writeInitial(db, file, state);
        if (legacy) {
          log?.info("imported the Rust service's raft state", { file, ...legacy.summary });
          markImported(legacy.files, log);
        }
      } else {
        state = load(db, file);
        const leftovers = leftoverLegacyFiles(dir);
        if (leftovers.length > 0) {
          log?.warn("ignoring legacy raft files: the database already holds this node's state", { files: leftovers.join(",") });
        }
      }
      const storage = new SqliteStorage(file, db, state, syncMode);
      log?.info("raft storage opened", {
        file,
        first_index: storage.firstIndex(),
        last_index: storage.lastIndex(),
        applied: state.appliedIndex,
        term: state.hardState.term,
        commit: state.hardState.commit,
      });
      return storage;
    } catch (e) {
      closeQuietly(db);
      throw e;
    }
  }

  // ---- Storage (read side, served from memory) ----

  initialState(): RaftState {
    return { hardState: { ...this.s.hardState }, confState: cloneConfState(this.s.confState) };
  }

  firstIndex(): number {
    return this.s.compactedIndex + 1;
  }

  lastIndex(): number {
    return this.s.compactedIndex + this.s.entries.length;
  }

  term(idx: number): number {
    const { compactedIndex, compactedTerm, entries } = this.s;
    if (idx === compactedIndex) return compactedTerm;
    if (idx < compactedIndex) throw new StorageError("Compacted", `term(${idx}) < first index ${compactedIndex + 1}`);
    if (idx > this.lastIndex()) throw new StorageError("Unavailable", `term(${idx}) > last index ${this.lastIndex()}`);
    return entries[idx - compactedIndex - 1].term;
  }

  entries(lo: number, hi: number, maxSize?: number): Entry[] {
    const first = this.firstIndex();
    if (lo < first) throw new StorageError("Compacted", `entries(${lo}) < first index ${first}`);
    if (hi > this.lastIndex() + 1) throw new Error(`entries hi ${hi} is out of bound, last index ${this.lastIndex()}`);
    // Cut at the size limit before copying (appends read from next_index to the end of the log).
    const from = lo - first;
    return this.s.entries.slice(from, from + fitCount(this.s.entries, from, hi - first, maxSize));
  }

  /** A snapshot of the state machine at the applied index (never older than `requestIndex`). */
  snapshot(requestIndex: number, _to: NodeId): Snapshot {
    const s = this.s;
    if (requestIndex > s.appliedIndex) {
      throw new StorageError("SnapshotTemporarilyUnavailable", `requested ${requestIndex}, applied ${s.appliedIndex}`);
    }
    return {
      data: s.chainConfigBytes,
      metadata: { index: s.appliedIndex, term: s.appliedTerm, confState: cloneConfState(s.confState) },
    };
  }

  // ---- write side ----

  /**
   * Makes one Ready durable in a single transaction. Only after it returns may the caller send
   * messages that depend on it (votes, append acks). Rejects batches that would break Raft's
   * safety rules (overwriting committed entries, a term going back, a second vote in a term).
   */
  persist(batch: PersistBatch): void {
    const snap = batch.snapshot && !isEmptySnapshot(batch.snapshot) ? batch.snapshot : undefined;
    const ents = batch.entries ?? [];
    if (!snap && ents.length === 0 && !batch.hardState) return;
    const s = this.s;

    // Check the whole batch against the state it will produce before writing anything.
    let compactedIndex = s.compactedIndex;
    let compactedTerm = s.compactedTerm;
    let last = this.lastIndex();
    let hs = s.hardState;
    if (snap) {
      const { index, term } = snap.metadata;
      if (!Number.isSafeInteger(index) || !Number.isSafeInteger(term)) throw new Error(`invalid snapshot index ${index} term ${term}`);
      // Raft only installs a snapshot beyond its commit index (which covers the applied one).
      if (index <= hs.commit) {
        throw new StorageError("SnapshotOutOfDate", `snapshot ${index} is not above the commit index ${hs.commit}`);
      }
      compactedIndex = last = index;
      compactedTerm = term;
      hs = { term: Math.max(hs.term, term), vote: hs.vote, commit: Math.max(hs.commit, index) };
    }
    let truncate = false;
    if (ents.length > 0) {
      const first = ents[0].index;
      if (!Number.isSafeInteger(first)) throw new Error(`appended entry index ${first} is not an integer`);
      if (first <= compactedIndex) throw new Error(`overwrite compacted raft logs: append at ${first}, compacted up to ${compactedIndex}`);
      if (first > last + 1) throw new Error(`raft logs should be continuous: append at ${first}, last index ${last}`);
      if (first <= last) {
        if (first <= hs.commit) throw new Error(`append at ${first} would overwrite committed entries (commit ${hs.commit})`);
        truncate = true;
      }
      let prevTerm = first - 1 === compactedIndex ? compactedTerm : s.entries[first - 2 - compactedIndex].term;
      for (let i = 0; i < ents.length; i++) {
        const e = ents[i];
        if (e.index !== first + i) throw new Error(`appended entries are not contiguous: ${e.index} after ${first + i - 1}`);
        if (!Number.isSafeInteger(e.term) || !(e.entryType >= 0 && e.entryType <= 255)) {
          throw new Error(`appended entry ${e.index} has an invalid term ${e.term} or type ${e.entryType}`);
        }
        if (e.term < prevTerm) throw new Error(`appended entry ${e.index} has term ${e.term} below the previous entry's ${prevTerm}`);
        prevTerm = e.term;
      }
      last = ents[ents.length - 1].index;
    }
    if (batch.hardState) {
      const next = batch.hardState;
      if (!Number.isSafeInteger(next.term) || !Number.isSafeInteger(next.commit) || next.vote < 0n || next.vote > U64_MAX) {
        throw new Error(`invalid hard state term ${next.term} vote ${next.vote} commit ${next.commit}`);
      }
      if (next.term < hs.term) throw new Error(`hard state term goes back from ${hs.term} to ${next.term}`);
      if (next.term === hs.term && hs.vote !== NONE && next.vote !== hs.vote) {
        throw new Error(`hard state changes the vote of term ${hs.term} from ${hs.vote} to ${next.vote}`);
      }
      if (next.commit < hs.commit) throw new Error(`hard state commit goes back from ${hs.commit} to ${next.commit}`);
      hs = { ...next };
    }
    // raft-rs refuses to start with a commit index beyond its log.
    if (hs.commit > last) throw new Error(`hard state commit ${hs.commit} is beyond the last entry ${last}`);

    // Entries, a snapshot, a new term or a vote must be on disk before anything is sent about them;
    // a commit index alone need not (Raft learns it again from the leader), so it rides along with
    // the next write that is synced.
    const mustSync = snap !== undefined || ents.length > 0 || (batch.hardState !== undefined && (batch.hardState.term !== s.hardState.term || batch.hardState.vote !== s.hardState.vote));
    this.write("persist", mustSync, () => {
      if (snap) {
        const m = snap.metadata;
        this.deleteLog.run();
        this.setSnapshot.run(codec.encodeConfState(m.confState), m.index, m.term, snap.data);
      }
      if (ents.length > 0) {
        const first = ents[0].index;
        if (truncate) this.truncateLog(first);
        this.insertBatch.run(first, ents[ents.length - 1].index, encodeEntries(ents));
      }
      if (snap || batch.hardState) this.setHardState.run(codec.encodeHardState(hs));
    });

    // Committed: mirror it in memory (nothing below can throw).
    if (snap) {
      const m = snap.metadata;
      s.entries.length = 0;
      s.compactedIndex = s.appliedIndex = m.index;
      s.compactedTerm = s.appliedTerm = m.term;
      s.confState = cloneConfState(m.confState);
      s.chainConfigBytes = snap.data;
      s.recommitEntry = undefined;
    }
    if (ents.length > 0) {
      s.entries.length = ents[0].index - s.compactedIndex - 1;
      for (const e of ents) s.entries.push(e);
    }
    s.hardState = hs;
  }

  /**
   * Records, atomically, that everything up to `index` is applied, together with the state
   * machine and ConfState it produced. Raises the stored commit index to `index` if it is behind,
   * so a restart never sees applied > commit.
   */
  apply(index: number, update: ApplyUpdate = {}): void {
    const s = this.s;
    if (!Number.isSafeInteger(index) || index <= s.appliedIndex) {
      throw new Error(`apply(${index}) does not advance the applied index ${s.appliedIndex}`);
    }
    if (index > this.lastIndex()) throw new Error(`apply(${index}) is beyond the last stored entry ${this.lastIndex()}`);
    const term = this.term(index);
    const hs = s.hardState.commit < index ? { ...s.hardState, commit: index } : undefined;
    const cs = update.confState ? cloneConfState(update.confState) : undefined;
    // Not synced: after a power loss the node applies the lost tail again, which the controller
    // answers as already done (CommitBlock is idempotent for heights it has).
    this.write("apply", false, () =>
      this.setApplied.run(index, term, update.chainConfigBytes ?? null, cs ? codec.encodeConfState(cs) : null, hs ? codec.encodeHardState(hs) : null),
    );
    s.appliedIndex = index;
    s.appliedTerm = term;
    s.recommitEntry = undefined;
    if (update.chainConfigBytes) s.chainConfigBytes = update.chainConfigBytes;
    if (cs) s.confState = cs;
    if (hs) s.hardState = hs;
  }

  /**
   * Deletes applied entries so that at most `keepTail` entries at or below the applied index
   * remain; the term of the entry before the new first one is kept. Returns how many were removed.
   */
  compact(keepTail: number): number {
    if (!Number.isSafeInteger(keepTail) || keepTail < 0) throw new Error(`compact keepTail must be a non-negative integer, got ${keepTail}`);
    const s = this.s;
    const newFirst = s.appliedIndex - keepTail + 1;
    const removed = newFirst - this.firstIndex();
    if (removed <= 0) return 0;
    const term = this.term(newFirst - 1);
    this.write("compact", false, () => {
      // A batch reaching past newFirst - 1 stays whole; loading skips its compacted head.
      this.deleteBatchesBelow.run(newFirst);
      this.setCompacted.run(newFirst - 1, term);
    });
    s.entries.splice(0, removed);
    s.compactedIndex = newFirst - 1;
    s.compactedTerm = term;
    return removed;
  }

  appliedIndex(): number {
    return this.s.appliedIndex;
  }

  /**
   * The entry at the applied index imported from the Rust service's `raft-entry`: a block it
   * applied that its controller may have lost, to be committed again. It is not in the log (the
   * term of the entry before it is unknown). Undefined for any other store, and once the applied
   * index moves on.
   */
  recommitEntry(): Entry | undefined {
    return this.s.recommitEntry;
  }

  /**
   * Replaces the state machine without moving the applied index: the node adopts a newer
   * configuration from its controller (Reconfigure, or at bootstrap).
   */
  setChainConfigBytes(chainConfigBytes: Uint8Array): void {
    this.write("state machine", false, () => this.setChainConfigStmt.run(chainConfigBytes));
    this.s.chainConfigBytes = chainConfigBytes;
  }

  /** Encoded common.ConsensusConfiguration as of the applied index (empty on a fresh node). */
  chainConfigBytes(): Uint8Array {
    return this.s.chainConfigBytes;
  }

  abortHeight(): bigint {
    return this.s.abortHeight;
  }

  setAbortHeight(height: bigint): void {
    if (height < 0n || height > U64_MAX) throw new Error(`abort height ${height} is not a u64`);
    this.write("abort height", true, () => this.setAbort.run(height.toString()));
    this.s.abortHeight = height;
  }

  /** Closes the database (releasing the data dir lock). Safe to call more than once. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    // close(true) finalizes the prepared statements; plain close() would keep the lock until GC.
    this.db.close(true);
  }

  /** Removes every stored entry at index >= `from`; the kept head of a cut batch is rewritten. */
  private truncateLog(from: number): void {
    const cut = this.deleteBatchesFrom.values(from).map((r) => Number(r[0] as bigint));
    const headFirst = Math.max(Math.min(...cut), this.firstIndex());
    if (headFirst < from) {
      this.insertBatch.run(headFirst, from - 1, encodeEntries(this.entries(headFirst, from)));
    }
  }

  /**
   * One transaction. `sync` writes follow the configured mode (FULL: fsynced before this returns);
   * the others are NORMAL: durable across a process crash, and on disk with the next synced write
   * (the WAL is synced in order, so what survives a power loss is always a prefix of the writes).
   */
  private write(what: string, sync: boolean, f: () => void): void {
    const mode: SyncMode = sync ? this.syncMode : "NORMAL";
    try {
      if (mode !== this.syncNow) {
        this.db.run(`PRAGMA synchronous = ${mode}`);
        this.syncNow = mode;
      }
      this.db.transaction(f)();
    } catch (e) {
      throw new StorageWriteError(`raft database ${this.file}: ${what} failed: ${describeSqliteError(e)}`);
    }
  }
}

function writeInitial(db: Database, file: string, s: DurableState): void {
  const bad = inconsistency(s);
  if (bad) throw new StorageOpenError(`refusing to initialise ${file} with an inconsistent state: ${bad}`);
  try {
    db.transaction(() => {
      createSchema(db);
      db.prepare(
        "INSERT INTO raft_state (id, hard_state, conf_state, applied_index, applied_term, state_machine, " +
          "compacted_index, compacted_term, abort_height, recommit_entry) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      ).run(
        codec.encodeHardState(s.hardState),
        codec.encodeConfState(s.confState),
        s.appliedIndex,
        s.appliedTerm,
        s.chainConfigBytes,
        s.compactedIndex,
        s.compactedTerm,
        s.abortHeight.toString(),
        s.recommitEntry ? codec.encodeEntry(s.recommitEntry) : null,
      );
      if (s.entries.length > 0) {
        db.prepare("INSERT INTO log (first_index, last_index, entries) VALUES (?, ?, ?)").run(
          s.entries[0].index,
          s.entries[s.entries.length - 1].index,
          encodeEntries(s.entries),
        );
      }
    })();
  } catch (e) {
    throw new StorageOpenError(`cannot initialise raft database ${file}: ${describeSqliteError(e)}`);
  }
}

type Row = Record<string, unknown>;

function load(db: Database, file: string): DurableState {
  const broken = (why: string) =>
    new StorageOpenError(`raft database ${file} is inconsistent (${why}); restore it from a backup, or move the raft data dir away to resync this node`);
  const row = db.query("SELECT * FROM raft_state WHERE id = 1").get() as Row | null;
  if (!row) throw broken("no raft_state row");
  const num = (v: unknown, what: string): number => {
    if (typeof v !== "bigint" || v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) throw broken(`${what} is ${String(v)}`);
    return Number(v);
  };
  const bytes = (v: unknown, what: string): Uint8Array => {
    if (!(v instanceof Uint8Array)) throw broken(`${what} is not a blob`);
    return v;
  };
  const decode = <T>(what: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      throw broken(`${what}: ${(e as Error).message}`);
    }
  };
  const abortText = String(row.abort_height);
  if (!/^\d{1,20}$/.test(abortText) || BigInt(abortText) > U64_MAX) throw broken(`abort_height is ${abortText}`);

  const compactedIndex = num(row.compacted_index, "compacted_index");
  const entries: Entry[] = [];
  for (const [f, l, blob] of db.query("SELECT first_index, last_index, entries FROM log ORDER BY first_index").values()) {
    const first = num(f, "log batch first_index");
    const last = num(l, `last_index of log batch ${first}`);
    if (last < first) throw broken(`log batch ${first} ends at ${last}`);
    const ents = decode(`log batch ${first}..${last}`, () => decodeEntries(bytes(blob, `log batch ${first}`), first, last));
    for (const e of ents) if (e.index > compactedIndex) entries.push(e);
  }
  const state: DurableState = {
    hardState: decode("hard_state", () => codec.decodeHardState(bytes(row.hard_state, "hard_state"))),
    confState: decode("conf_state", () => codec.decodeConfState(bytes(row.conf_state, "conf_state"))),
    appliedIndex: num(row.applied_index, "applied_index"),
    appliedTerm: num(row.applied_term, "applied_term"),
    chainConfigBytes: bytes(row.state_machine, "state_machine"),
    compactedIndex,
    compactedTerm: num(row.compacted_term, "compacted_term"),
    abortHeight: BigInt(abortText),
    entries,
    recommitEntry:
      row.recommit_entry === null ? undefined : decode("recommit_entry", () => codec.decodeEntry(bytes(row.recommit_entry, "recommit_entry"))),
  };
  const bad = inconsistency(state);
  if (bad) throw broken(bad);
  return state;
}
