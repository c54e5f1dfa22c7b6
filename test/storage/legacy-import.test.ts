// First start on a raft_data_path left by the Rust consensus_raft: its raft-snapshot, raft-entry
// and abort_height files are imported once (byte for byte what consensus_raft 6.7.4 writes).
import { afterEach, describe, expect, test } from "bun:test";
import { createConsola, type LogObject } from "consola";
import fs from "node:fs";
import path from "node:path";
import { EntryType, newConfState } from "../../src/raft/index.ts";
import { StorageOpenError } from "../../src/storage/errors.ts";
import { DB_FILE, SqliteStorage } from "../../src/storage/sqlite.ts";
import { CONFIG, ENTRY_NEXT_FILE as ENTRY_FILE, PROPOSAL, SNAPSHOT_FILE, VOTER, legacyDir, removeLegacyDirs } from "../fixtures/storage/legacy-files.ts";
import { fingerprint } from "../fixtures/storage/workload.ts";

const hex = (h: string) => Uint8Array.from(Buffer.from(h, "hex"));
afterEach(removeLegacyDirs);

function capture() {
  const logs: LogObject[] = [];
  const log = createConsola({ level: 5, reporters: [{ log: (o) => logs.push(o) }] });
  const lines = (type: string) => logs.filter((o) => o.type === type);
  return { log, logs, lines };
}

function openFails(dir: string): string {
  try {
    SqliteStorage.open(dir).close();
  } catch (e) {
    expect(e).toBeInstanceOf(StorageOpenError);
    return (e as Error).message;
  }
  throw new Error("open succeeded");
}

describe("importing the Rust service's files", () => {
  test("the Rust service's snapshot, entry and abort height become the node's state, and are logged", () => {
    const dir = legacyDir({ "raft-snapshot": SNAPSHOT_FILE, "raft-entry": ENTRY_FILE, abort_height: "12" });
    const { log, lines } = capture();
    const s = SqliteStorage.open(dir, { log });
    try {
      expect(s.initialState()).toEqual({ hardState: { term: 6, vote: 0n, commit: 6 }, confState: newConfState({ voters: [VOTER] }) });
      expect([s.firstIndex(), s.lastIndex(), s.term(6), s.term(7), s.appliedIndex()]).toEqual([7, 7, 6, 6, 6]);
      expect(s.entries(7, 8)).toEqual([{ entryType: EntryType.EntryNormal, term: 6, index: 7, data: PROPOSAL, context: new Uint8Array() }]);
      expect(s.chainConfigBytes()).toEqual(CONFIG);
      expect(s.snapshot(6, VOTER)).toEqual({ data: CONFIG, metadata: { index: 6, term: 6, confState: newConfState({ voters: [VOTER] }) } });
      expect(s.abortHeight()).toBe(12n);
    } finally {
      s.close();
    }
    const [imported] = lines("info").filter((o) => o.args[0] === "imported the Rust service's raft state");
    expect(imported.args[1]).toEqual({
      file: path.join(dir, DB_FILE),
      snapshot_index: 6,
      snapshot_term: 6,
      voters: String(VOTER),
      height: "0",
      block_interval: 3,
      validators: 1,
      entry: "index 7 term 6",
      abort_height: "12",
    });
  });

  test("imported files are renamed to *.imported, and a second start neither re-imports nor warns", () => {
    const dir = legacyDir({ "raft-snapshot": SNAPSHOT_FILE, "raft-entry": ENTRY_FILE, abort_height: "12" });
    const first = SqliteStorage.open(dir);
    first.apply(7);
    const state = fingerprint(first);
    first.close();
    expect(fs.readdirSync(dir).sort()).toEqual(["abort_height.imported", "raft-entry.imported", "raft-snapshot.imported", "raft.sqlite"]);
    expect(fs.readFileSync(path.join(dir, "raft-snapshot.imported"))).toEqual(Buffer.from(SNAPSHOT_FILE));
    const { log, logs } = capture();
    const again = SqliteStorage.open(dir, { log });
    expect(fingerprint(again)).toBe(state);
    again.close();
    expect(logs.filter((o) => o.type !== "info" || String(o.args[0]).startsWith("imported"))).toEqual([]);
  });

  test("an empty raft-entry (the Rust service's usual state after a no-op batch) imports no entry", () => {
    const dir = legacyDir({ "raft-snapshot": SNAPSHOT_FILE, "raft-entry": "" });
    const { log, lines } = capture();
    const s = SqliteStorage.open(dir, { log });
    expect([s.firstIndex(), s.lastIndex(), s.appliedIndex(), s.abortHeight()]).toEqual([7, 6, 6, 0n]);
    s.close();
    expect(lines("info")[0].args[1]).toMatchObject({ entry: "none (empty file)" });
  });

  test("a raft-entry that does not follow the snapshot is left out, and the log says so", () => {
    // Entry index 7 after a snapshot at index 6 is expected; here there is no snapshot at all.
    const dir = legacyDir({ "raft-entry": ENTRY_FILE });
    const { log, lines } = capture();
    const s = SqliteStorage.open(dir, { log });
    expect([s.lastIndex(), s.appliedIndex()]).toEqual([0, 0]);
    s.close();
    expect(lines("info")[0].args[1]).toMatchObject({ entry: "ignored index 7 term 6: it does not follow the snapshot (0, term 0)" });
  });

  test("an empty raft-snapshot counts as none (the Rust service truncates before rewriting)", () => {
    const dir = legacyDir({ "raft-snapshot": "", abort_height: "18446744073709551615\n" });
    const s = SqliteStorage.open(dir);
    expect([s.lastIndex(), s.appliedIndex(), s.abortHeight()]).toEqual([0, 0, (1n << 64n) - 1n]);
    s.close();
  });

  test("legacy files next to an existing database are ignored with a warning", () => {
    const dir = legacyDir({});
    SqliteStorage.open(dir).close();
    fs.writeFileSync(path.join(dir, "raft-snapshot"), SNAPSHOT_FILE);
    const { log, lines } = capture();
    const s = SqliteStorage.open(dir, { log });
    expect(s.appliedIndex()).toBe(0);
    s.close();
    expect(lines("warn").map((o) => o.args[1])).toEqual([{ files: "raft-snapshot" }]);
    expect(fs.existsSync(path.join(dir, "raft-snapshot"))).toBe(true);
  });
});

describe("undecodable legacy files stop the start and import nothing", () => {
  const cases: [string, Record<string, Uint8Array | string>, RegExp][] = [
    ["a truncated raft-snapshot", { "raft-snapshot": SNAPSHOT_FILE.subarray(0, 30) }, /raft-snapshot: premature EOF/],
    ["bytes after the raft-snapshot message", { "raft-snapshot": Buffer.concat([SNAPSHOT_FILE, hex("00")]) }, /raft-snapshot: 1 bytes after the length-delimited message/],
    ["a snapshot whose data is not a ConsensusConfiguration", { "raft-snapshot": hex("050a03ffffff") }, /raft-snapshot: its data is not a ConsensusConfiguration/],
    ["a truncated raft-entry", { "raft-snapshot": SNAPSHOT_FILE, "raft-entry": ENTRY_FILE.subarray(0, 9) }, /raft-entry: premature EOF/],
    ["a non-numeric abort_height", { abort_height: "12a" }, /abort_height: "12a" is not a decimal u64/],
    ["an abort_height above u64", { abort_height: "18446744073709551616" }, /abort_height: "18446744073709551616" is not a decimal u64/],
  ];
  for (const [name, files, expected] of cases) {
    test(name, () => {
      const dir = legacyDir(files);
      const msg = openFails(dir);
      expect(msg).toMatch(expected);
      expect(msg).toStartWith(`cannot import legacy ${dir}/`);
      expect(msg).toEndWith("nothing was imported (fix the file or move it away)");
      expect(fs.readdirSync(dir).filter((f) => f.endsWith(".imported"))).toEqual([]);
    });
  }

  test("after the operator fixes the file, the next start imports it", () => {
    const dir = legacyDir({ "raft-snapshot": SNAPSHOT_FILE.subarray(0, 30) });
    openFails(dir);
    fs.writeFileSync(path.join(dir, "raft-snapshot"), SNAPSHOT_FILE);
    const s = SqliteStorage.open(dir);
    expect(s.appliedIndex()).toBe(6);
    s.close();
  });
});
