// The simulated disk must lose exactly what a kill -9 loses, or the crash faults prove nothing.
import { describe, expect, test } from "bun:test";
import { StorageError } from "../../src/raft/storage.ts";
import { newConfState, newEntry, newSnapshot } from "../../src/raft/types.ts";
import { BOOT_HASH, BOOT_INDEX, BOOT_TERM, encodeSm } from "./state-machine.ts";
import { SimStorage } from "./storage.ts";

const ent = (index: number, term: number) => newEntry({ index, term });

describe("simulated storage", () => {
  test("boots like a fresh validator: snapshot at (5, 5) with the voters, durable at once", () => {
    const s = SimStorage.bootstrapped([1n, 2n, 3n]);
    expect(s.firstIndex()).toBe(BOOT_INDEX + 1);
    expect(s.lastIndex()).toBe(BOOT_INDEX);
    expect(s.term(BOOT_INDEX)).toBe(BOOT_TERM);
    expect(s.initialState().confState.voters).toEqual([1n, 2n, 3n]);
    s.crash();
    expect(s.durable.hs).toEqual({ term: BOOT_TERM, vote: 0n, commit: BOOT_INDEX });
    expect(s.durable.sm).toEqual({ applied: BOOT_INDEX, hash: BOOT_HASH });
  });

  test("Raft reads unsynced writes, and a crash loses them all", () => {
    const s = SimStorage.bootstrapped([1n, 2n, 3n]);
    s.stageAppend([ent(6, 6), ent(7, 6)]);
    s.stageHardState({ term: 6, vote: 2n, commit: 5 });
    expect(s.lastIndex()).toBe(7);
    expect(s.term(7)).toBe(6);
    expect(s.durableLastIndex()).toBe(5);
    s.crash();
    expect(s.lastIndex()).toBe(5);
    expect(s.initialState().hardState).toEqual({ term: BOOT_TERM, vote: 0n, commit: BOOT_INDEX });
  });

  test("an fsync makes every pending write durable at once, including a truncation", () => {
    const s = SimStorage.bootstrapped([1n, 2n, 3n]);
    s.stageAppend([ent(6, 6), ent(7, 6), ent(8, 6)]);
    s.fsync();
    s.stageAppend([ent(7, 7)]);
    s.stageHardState({ term: 7, vote: 3n, commit: 6 });
    s.fsync();
    s.crash();
    expect(s.lastIndex()).toBe(7);
    expect(s.term(7)).toBe(7);
    expect(s.durable.hs).toEqual({ term: 7, vote: 3n, commit: 6 });
  });

  test("the applied state machine is durable at once and keeps commit >= applied", () => {
    const s = SimStorage.bootstrapped([1n, 2n, 3n]);
    s.stageAppend([ent(6, 6), ent(7, 6)]);
    s.fsync();
    s.recordApply({ applied: 7, hash: 42 }, newConfState({ voters: [1n, 2n] }));
    s.crash();
    expect(s.durable.sm).toEqual({ applied: 7, hash: 42 });
    expect(s.durable.hs.commit).toBe(7);
    expect(s.initialState().confState.voters).toEqual([1n, 2n]);
  });

  test("a snapshot is cut at the applied index and compaction keeps the term before the first entry", () => {
    const s = SimStorage.bootstrapped([1n, 2n, 3n]);
    s.stageAppend([ent(6, 6), ent(7, 6), ent(8, 7)]);
    s.fsync();
    s.recordApply({ applied: 8, hash: 9 }, undefined);
    const snap = s.snapshotAndCompact(8);
    expect(snap.metadata).toMatchObject({ index: 8, term: 7 });
    expect(s.firstIndex()).toBe(8);
    expect(s.term(7)).toBe(6);
    expect(() => s.entries(7, 8)).toThrow(StorageError);
    expect(s.snapshot(0, 2n).metadata.index).toBe(8);
  });

  test("installing a snapshot replaces the log and the state machine only when fsynced", () => {
    const s = SimStorage.bootstrapped([1n, 2n, 3n]);
    const snap = newSnapshot(20, 9, newConfState({ voters: [1n, 2n, 3n] }), encodeSm({ applied: 20, hash: 77 }));
    s.stageSnapshot(snap);
    expect(s.lastIndex()).toBe(20);
    s.crash();
    expect(s.lastIndex()).toBe(5);
    s.stageSnapshot(snap);
    s.fsync();
    s.crash();
    expect(s.lastIndex()).toBe(20);
    expect(s.durable.sm).toEqual({ applied: 20, hash: 77 });
    expect(s.durable.hs).toMatchObject({ term: 9, commit: 20 });
  });

  test("refuses to compact or snapshot while log writes are pending (they would not commute)", () => {
    const s = SimStorage.bootstrapped([1n, 2n, 3n]);
    s.stageAppend([ent(6, 6)]);
    expect(() => s.snapshotAndCompact(6)).toThrow(/pending/);
  });
});
