import { errorMessage } from "../util/errors.ts";
// Errors of the durable storage. Both carry one readable line meant to be the service's last log
// line: the storage never repairs or resets anything by itself, the operator decides.

/** The raft data dir or its database cannot be used: the service must not start. */
export class StorageOpenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StorageOpenError";
  }
}

/**
 * A write transaction failed (disk full, I/O error). The transaction was rolled back and the
 * in-memory view is unchanged, but nothing more can be promised to peers: treat it as fatal.
 */
export class StorageWriteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StorageWriteError";
  }
}

/** The `code` of a bun:sqlite SQLiteError (e.g. "SQLITE_BUSY"), or undefined for other errors. */
export function sqliteCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("SQLITE_") ? code : undefined;
}

/** A short human description of a SQLite failure, keyed on its result code family. */
export function describeSqliteError(e: unknown): string {
  const code = sqliteCode(e) ?? "";
  const msg = errorMessage(e);
  if (code.startsWith("SQLITE_FULL")) return `disk full (${msg})`;
  if (code.startsWith("SQLITE_IOERR")) return `I/O error (${msg}, ${code})`;
  if (code.startsWith("SQLITE_READONLY")) return `read-only (${msg})`;
  if (code.startsWith("SQLITE_CORRUPT") || code === "SQLITE_NOTADB") return `corrupt (${msg})`;
  return code ? `${msg} (${code})` : msg;
}
