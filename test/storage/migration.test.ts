// A raft database written by an earlier version of this service opens after an upgrade with every
// piece of its state, migrated in place once; a file from a newer version is refused untouched.
//
// fixtures/storage/schema-v1.sqlite was written by the schema-version-1 storage (the service
// before the recommit entry): open a new dir; persist entries 1..10 (term 1, data "block <i>") with
// HardState{1, vote 1, commit 10}; persist 11..20 (term 2) with HardState{2, vote VOTER, commit 18};
// apply(15) with state machine CONFIG and voters [VOTER]; compact(5); abort height 42; close.
import { Database } from "bun:sqlite";
import { afterEach, expect, test } from "bun:test";
import { createConsola, type LogObject } from "consola";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { newConfState } from "../../src/raft/types.ts";
import { SCHEMA_VERSION } from "../../src/storage/db.ts";
import { StorageOpenError } from "../../src/storage/errors.ts";
import { DB_FILE, SqliteStorage } from "../../src/storage/sqlite.ts";
import { CONFIG, VOTER } from "../fixtures/storage/legacy-files.ts";

const V1 = path.join(import.meta.dir, "../fixtures/storage/schema-v1.sqlite");
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function v1Dir(): { dir: string; file: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "storage-migration-"));
  dirs.push(dir);
  const file = path.join(dir, DB_FILE);
  fs.copyFileSync(V1, file);
  return { dir, file };
}

function userVersion(file: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return Number((db.query("PRAGMA user_version").get() as { user_version: number }).user_version);
  } finally {
    db.close(true);
  }
}

function expectV1State(s: SqliteStorage): void {
  expect(s.initialState()).toEqual({ hardState: { term: 2, vote: VOTER, commit: 18 }, confState: newConfState({ voters: [VOTER] }) });
  expect([s.firstIndex(), s.lastIndex(), s.appliedIndex(), s.term(10), s.term(11), s.abortHeight()]).toEqual([11, 20, 15, 1, 2, 42n]);
  expect(s.entries(11, 21).map((e) => `${e.index}/${e.term}/${new TextDecoder().decode(e.data)}`)).toEqual(
    Array.from({ length: 10 }, (_, k) => `${11 + k}/2/block ${11 + k}`),
  );
  expect(s.chainConfigBytes()).toEqual(CONFIG);
  expect(s.recommitEntry()).toBeUndefined();
}

test("a version-1 file opens with all its state, is migrated once, and says so in the log", () => {
  expect(SCHEMA_VERSION).toBe(2);
  const { dir, file } = v1Dir();
  expect(userVersion(file)).toBe(1);
  const logs: LogObject[] = [];
  const log = createConsola({ level: 5, reporters: [{ log: (o) => logs.push(o) }] });
  const s = SqliteStorage.open(dir, { log });
  expectV1State(s);
  // It goes on working: the next entry applies.
  s.apply(16);
  s.close();
  expect(userVersion(file)).toBe(2);
  expect(logs.filter((o) => o.args[0] === "raft database migrated").map((o) => o.args[1])).toEqual([{ file, from_version: 1, to_version: 2 }]);

  logs.length = 0;
  const again = SqliteStorage.open(dir, { log });
  expect([again.appliedIndex(), again.lastIndex()]).toEqual([16, 20]);
  again.close();
  expect(logs.filter((o) => o.args[0] === "raft database migrated")).toEqual([]);
});

test("a file from a newer version is refused with one line, and left as it was", () => {
  const { dir, file } = v1Dir();
  const db = new Database(file);
  db.run(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
  db.close(true);
  const before = fs.readFileSync(file);
  let message = "";
  try {
    SqliteStorage.open(dir).close();
  } catch (e) {
    expect(e).toBeInstanceOf(StorageOpenError);
    message = (e as Error).message;
  }
  expect(message).toBe(
    `raft database ${file} has schema version 3, newer than version 2 of this consensus; run the newer consensus binary that wrote it`,
  );
  expect(fs.readFileSync(file).equals(before)).toBe(true);
});
