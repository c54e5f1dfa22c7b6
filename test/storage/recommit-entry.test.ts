// The Rust service's `raft-entry` at the applied index: a block it applied that its controller
// (no WAL since controller v6.7.0) may have lost in a power loss. The import keeps it beside the
// log, not in it, for the committer to commit again; it survives restarts until the applied index
// moves on. At applied + 1 it is still an ordinary uncommitted log entry.
import { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import { createConsola, type LogObject } from "consola";
import fs from "node:fs";
import path from "node:path";
import { EntryType, newConfState, newEntry } from "../../src/raft/types.ts";
import { DB_FILE, SqliteStorage } from "../../src/storage/sqlite.ts";
import { CONFIG, ENTRY_APPLIED_FILE, ENTRY_NEXT_FILE, ENTRY_STALE_FILE, PROPOSAL, SNAPSHOT_FILE, VOTER, legacyDir, removeLegacyDirs } from "../fixtures/storage/legacy-files.ts";

afterEach(removeLegacyDirs);

function capture() {
  const logs: LogObject[] = [];
  const log = createConsola({ level: 5, reporters: [{ log: (o) => logs.push(o) }] });
  const imported = () => logs.find((o) => o.args[0] === "imported the Rust service's raft state")?.args[1];
  return { log, imported };
}

const APPLIED_ENTRY = { entryType: EntryType.EntryNormal, term: 6, index: 6, data: PROPOSAL, context: new Uint8Array() };

/** The raw column, as a later binary or an operator with sqlite3 would see it. */
function storedColumn(dir: string): unknown {
  const db = new Database(path.join(dir, DB_FILE), { readonly: true });
  try {
    return (db.query("SELECT recommit_entry FROM raft_state").get() as { recommit_entry: unknown }).recommit_entry;
  } finally {
    db.close(true);
  }
}

describe("raft-entry at the applied index", () => {
  test("is kept for a recommit, outside the Raft log, and the import says so", () => {
    const dir = legacyDir({ "raft-snapshot": SNAPSHOT_FILE, "raft-entry": ENTRY_APPLIED_FILE });
    const { log, imported } = capture();
    const s = SqliteStorage.open(dir, { log });
    try {
      expect(s.recommitEntry()).toEqual(APPLIED_ENTRY);
      // The log is as after the snapshot alone: nothing at or after index 6, term(6) from the snapshot.
      expect([s.firstIndex(), s.lastIndex(), s.appliedIndex(), s.term(6)]).toEqual([7, 6, 6, 6]);
      expect(s.initialState().hardState).toEqual({ term: 6, vote: 0n, commit: 6 });
      expect(s.chainConfigBytes()).toEqual(CONFIG);
    } finally {
      s.close();
    }
    expect(imported()).toMatchObject({ snapshot_index: 6, entry: "index 6 term 6, the applied block: kept to be committed again" });
  });

  test("survives restarts until the applied index moves on, then is gone for good", () => {
    const dir = legacyDir({ "raft-snapshot": SNAPSHOT_FILE, "raft-entry": ENTRY_APPLIED_FILE });
    SqliteStorage.open(dir).close();
    expect(storedColumn(dir)).toBeInstanceOf(Uint8Array);

    const again = SqliteStorage.open(dir);
    expect(again.recommitEntry()).toEqual(APPLIED_ENTRY);
    // A leader appends the next block; it is persisted and committed: still nothing applied past 6.
    again.persist({ entries: [newEntry({ index: 7, term: 7, data: Uint8Array.of(8, 2) })], hardState: { term: 7, vote: 0n, commit: 7 } });
    again.close();
    const third = SqliteStorage.open(dir);
    expect(third.recommitEntry()).toEqual(APPLIED_ENTRY);
    third.apply(7);
    expect(third.recommitEntry()).toBeUndefined();
    third.close();

    expect(storedColumn(dir)).toBeNull();
    const last = SqliteStorage.open(dir);
    expect([last.recommitEntry(), last.appliedIndex()]).toEqual([undefined, 7]);
    last.close();
  });

  test("is dropped when a snapshot from the leader replaces the applied state", () => {
    const dir = legacyDir({ "raft-snapshot": SNAPSHOT_FILE, "raft-entry": ENTRY_APPLIED_FILE });
    const s = SqliteStorage.open(dir);
    s.persist({ snapshot: { data: CONFIG, metadata: { index: 20, term: 8, confState: newConfState({ voters: [VOTER] }) } } });
    expect(s.recommitEntry()).toBeUndefined();
    s.close();
    const again = SqliteStorage.open(dir);
    expect([again.recommitEntry(), again.appliedIndex()]).toEqual([undefined, 20]);
    again.close();
  });

  test("of another term than the snapshot is not the applied block: ignored, and the import says so", () => {
    const dir = legacyDir({ "raft-snapshot": SNAPSHOT_FILE, "raft-entry": ENTRY_STALE_FILE });
    const { log, imported } = capture();
    const s = SqliteStorage.open(dir, { log });
    expect([s.recommitEntry(), s.lastIndex()]).toEqual([undefined, 6]);
    s.close();
    expect(imported()).toMatchObject({ entry: "ignored index 6 term 5: not the applied block (snapshot 6, term 6)" });
  });
});

describe("raft-entry at the applied index + 1", () => {
  test("becomes the uncommitted last log entry, as in the Rust recovery; nothing to recommit", () => {
    const dir = legacyDir({ "raft-snapshot": SNAPSHOT_FILE, "raft-entry": ENTRY_NEXT_FILE });
    const { log, imported } = capture();
    const s = SqliteStorage.open(dir, { log });
    expect(s.recommitEntry()).toBeUndefined();
    expect([s.firstIndex(), s.lastIndex(), s.appliedIndex(), s.initialState().hardState.commit]).toEqual([7, 7, 6, 6]);
    expect(s.entries(7, 8)).toEqual([{ ...APPLIED_ENTRY, index: 7 }]);
    s.close();
    expect(storedColumn(dir)).toBeNull();
    expect(imported()).toMatchObject({ entry: "index 7 term 6" });
  });
});

test("a store that never saw the Rust service's files has nothing to recommit", () => {
  const dir = legacyDir({});
  const s = SqliteStorage.open(dir);
  s.persist({ entries: [newEntry({ index: 1, term: 1, data: PROPOSAL })], hardState: { term: 1, vote: 0n, commit: 1 } });
  s.apply(1);
  expect(s.recommitEntry()).toBeUndefined();
  s.close();
});
