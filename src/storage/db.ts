// Opening the raft database file: durability pragmas, the single-writer lock, corruption and
// schema-version checks. Every failure becomes one StorageOpenError line naming the file; nothing
// is ever deleted or reset here.
import { Database } from "bun:sqlite";
import fs from "node:fs";
import { StorageOpenError, describeSqliteError, sqliteCode } from "./errors.ts";

/** Version of the layout below; bump it (and add a migration to MIGRATIONS) when the schema changes. */
export const SCHEMA_VERSION = 2;
/** Marks the file as ours ("Raft"), so a foreign SQLite file is refused instead of extended. */
export const APPLICATION_ID = 0x52616674;

export type SyncMode = "FULL" | "NORMAL";

// Terms and indexes are INTEGER (≤ 2^53 by the codec's rule). Node ids live only inside encoded
// eraftpb blobs and the abort height is decimal text, so no u64 is ever bound as a signed int64.
const SCHEMA = `
CREATE TABLE raft_state (
  id              INTEGER PRIMARY KEY CHECK (id = 1),
  hard_state      BLOB NOT NULL,    -- eraftpb.HardState
  conf_state      BLOB NOT NULL,    -- eraftpb.ConfState as of the applied index
  applied_index   INTEGER NOT NULL,
  applied_term    INTEGER NOT NULL,
  state_machine   BLOB NOT NULL,    -- common.ConsensusConfiguration at the applied index
  compacted_index INTEGER NOT NULL, -- the entry just before the first retained one
  compacted_term  INTEGER NOT NULL,
  abort_height    TEXT NOT NULL,    -- u64, decimal
  recommit_entry  BLOB              -- eraftpb.Entry at applied_index imported from the Rust service, or NULL
);
-- One row per appended batch (frame.ts); rows may hold entries below compacted_index + 1,
-- which a load skips.
CREATE TABLE log (
  first_index INTEGER PRIMARY KEY,
  last_index  INTEGER NOT NULL,
  entries     BLOB NOT NULL
);
`;

/**
 * Migrations, by the version they start from: each brings a file one version up, inside the
 * transaction that also stamps the new version.
 */
const MIGRATIONS: Record<number, string> = {
  // 1 → 2: the imported Rust `raft-entry` at the applied index, kept beside the log for a recommit.
  1: "ALTER TABLE raft_state ADD COLUMN recommit_entry BLOB",
};

export interface OpenedDatabase {
  db: Database;
  /** The schema version the file had when it was migrated to SCHEMA_VERSION by this open. */
  migratedFrom?: number;
  /**
   * True when the file holds no schema yet (new, or an earlier first start stopped before its
   * initial transaction committed): the caller creates the schema and the initial state at once.
   */
  fresh: boolean;
}

/**
 * Opens `file` inside `dir` for exclusive read-write use. Takes the write lock at once, so a
 * second process on the same dir fails here instead of interleaving writes.
 */
export function openDatabase(dir: string, file: string, sync: SyncMode): OpenedDatabase {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new StorageOpenError(`cannot create raft data dir ${dir}: ${(e as Error).message}`);
  }
  // SQLite would silently fall back to read-only (and fail later at the first write): check first.
  if (!accessible(dir, fs.constants.W_OK | fs.constants.X_OK)) {
    throw new StorageOpenError(`raft data dir ${dir} is not writable`);
  }
  if (fs.existsSync(file) && !accessible(file, fs.constants.R_OK | fs.constants.W_OK)) {
    throw new StorageOpenError(`raft database ${file} is read-only`);
  }

  let db: Database | undefined;
  try {
    db = new Database(file, { create: true, strict: true, safeIntegers: true });
    // Give a process that is just exiting (restart) a moment to release the lock.
    db.run("PRAGMA busy_timeout = 1000");
    // Exclusive mode: the lock is held until close, and the WAL index lives in process memory.
    db.run("PRAGMA locking_mode = EXCLUSIVE");
    const mode = pragma(db, "journal_mode = WAL");
    if (String(mode).toLowerCase() !== "wal") throw new Error(`journal_mode stayed ${mode}, WAL is required`);
    db.run(`PRAGMA synchronous = ${sync}`);
    // Let the WAL shrink back after an unusually large transaction (a big snapshot or batch).
    db.run("PRAGMA journal_size_limit = 16777216");
    db.run("BEGIN IMMEDIATE");
    db.run("COMMIT");
    const problems = db
      .query("PRAGMA quick_check")
      .values()
      .map((r) => String(r[0]));
    if (problems.length !== 1 || problems[0] !== "ok") {
      throw new StorageOpenError(
        `raft database ${file} is corrupt (quick_check: ${oneLine(problems.join("; "))}); ` +
          "restore it from a backup, or move the raft data dir away to resync this node from its peers",
      );
    }
    const version = checkHeader(db, file);
    if (version === undefined) return { db, fresh: true };
    if (version < SCHEMA_VERSION) migrate(db, file, version);
    return { db, fresh: false, migratedFrom: version < SCHEMA_VERSION ? version : undefined };
  } catch (e) {
    closeQuietly(db);
    if (e instanceof StorageOpenError) throw e;
    const code = sqliteCode(e) ?? "";
    if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
      throw new StorageOpenError(`raft data dir ${dir} is in use by another consensus process (${file} is locked)`);
    }
    if (code.startsWith("SQLITE_CORRUPT") || code === "SQLITE_NOTADB") {
      throw new StorageOpenError(
        `raft database ${file} is corrupt (${(e as Error).message}); ` +
          "restore it from a backup, or move the raft data dir away to resync this node from its peers",
      );
    }
    throw new StorageOpenError(`cannot open raft database ${file}: ${describeSqliteError(e)}`);
  }
}

/** Creates the tables and stamps the file; call inside the transaction that writes the initial state. */
export function createSchema(db: Database): void {
  db.run(SCHEMA);
  db.run(`PRAGMA application_id = ${APPLICATION_ID}`);
  db.run(`PRAGMA user_version = ${SCHEMA_VERSION}`);
}

/** Returns the schema version, or undefined for a file without schema; throws for a foreign, newer or unknown one. */
function checkHeader(db: Database, file: string): number | undefined {
  const appId = Number(pragma(db, "application_id"));
  const version = Number(pragma(db, "user_version"));
  const tables = Number(db.query("SELECT count(*) FROM sqlite_schema").values()[0][0]);
  if (appId === 0 && version === 0 && tables === 0) return undefined;
  if (appId !== APPLICATION_ID) {
    throw new StorageOpenError(`${file} is not a consensus raft database (application_id ${appId}); move it away`);
  }
  if (version > SCHEMA_VERSION) {
    throw new StorageOpenError(
      `raft database ${file} has schema version ${version}, newer than version ${SCHEMA_VERSION} of this consensus; ` +
        "run the newer consensus binary that wrote it",
    );
  }
  if (version !== SCHEMA_VERSION && MIGRATIONS[version] === undefined) {
    throw new StorageOpenError(`raft database ${file} has unknown schema version ${version}`);
  }
  return version;
}

/** Brings the file from `from` up to SCHEMA_VERSION in one transaction: all of it, or nothing. */
function migrate(db: Database, file: string, from: number): void {
  try {
    db.transaction(() => {
      for (let v = from; v < SCHEMA_VERSION; v++) db.run(MIGRATIONS[v]);
      db.run(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    })();
  } catch (e) {
    throw new StorageOpenError(`cannot migrate raft database ${file} from schema version ${from} to ${SCHEMA_VERSION}: ${describeSqliteError(e)}`);
  }
}

/** Releases the connection (and with it the lock) at once, whatever the statement state. */
export function closeQuietly(db: Database | undefined): void {
  try {
    db?.close(true);
  } catch {
    // Closing after a failure: the original error is the one to report.
  }
}

function pragma(db: Database, p: string): unknown {
  return db.query(`PRAGMA ${p}`).values()[0]?.[0];
}

function accessible(path: string, mode: number): boolean {
  try {
    fs.accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
}

function oneLine(s: string): string {
  const flat = s.replace(/\s+/g, " ").trim();
  return flat.length > 300 ? `${flat.slice(0, 300)}…` : flat;
}
