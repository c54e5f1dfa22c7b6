// The chain simulator's watched storage: the durable view follows the writes that returned, and a
// write armed as a power cut does not happen.
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newEntry } from "../../../src/raft/types.ts";
import { SqliteStorage } from "../../../src/storage/sqlite.ts";
import { WatchedStorage } from "./storage.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function open(dir: string, died: string[] = []) {
  const inner = SqliteStorage.open(dir);
  return { inner, watched: new WatchedStorage(inner, (what) => died.push(what)) };
}

test("the durable view is what returned writes hold; an armed write kills the process instead of happening", () => {
  const dir = mkdtempSync(join(tmpdir(), "watched-"));
  dirs.push(dir);
  const died: string[] = [];
  const { inner, watched } = open(dir, died);
  watched.persist({ entries: [newEntry({ index: 1, term: 2 })], hardState: { term: 2, vote: 7n, commit: 0 } });
  expect(watched.durable).toEqual({ term: 2, vote: 7n, lastIndex: 1 });

  watched.crashAtNextWrite = true;
  expect(() => watched.persist({ entries: [newEntry({ index: 2, term: 3 })], hardState: { term: 3, vote: 9n, commit: 1 } })).toThrow(/died at its persist write/);
  expect(died).toEqual(["persist"]);
  expect(watched.durable).toEqual({ term: 2, vote: 7n, lastIndex: 1 });
  inner.close();

  // What a restart finds is the state before the cut.
  const again = open(dir);
  expect(again.watched.durable).toEqual({ term: 2, vote: 7n, lastIndex: 1 });
  again.inner.close();
});
