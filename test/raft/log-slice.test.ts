// Size-limited log reads must return exactly what "take [lo, hi) from storage + unstable tail, then
// keep entries while the running size fits (the first always)" returns, wherever the
// storage/unstable boundary and the limit fall. The implementation cuts before copying, so it is
// checked here against that naive definition.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { RaftLog } from "../../src/raft/raft-log.ts";
import { MemStorage, limitSize } from "../../src/raft/storage.ts";
import { type Entry, newEntry } from "../../src/raft/types.ts";

function entries(sizes: number[], first: number): Entry[] {
  return sizes.map((n, i) => newEntry({ index: first + i, term: 1, data: new Uint8Array(n) }));
}

const indexes = (ents: Entry[]) => ents.map((e) => e.index);

describe("size-limited log slices", () => {
  test("RaftLog.slice and MemStorage.entries match the naive definition", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 64 }), { minLength: 1, maxLength: 40 }),
        fc.nat(),
        fc.nat(),
        fc.nat(),
        fc.option(fc.integer({ min: 0, max: 400 }), { nil: undefined }),
        (sizes, splitSeed, loSeed, hiSeed, maxSize) => {
          // Entries 2..n+1 after a snapshot at 1; the first `stable` are in storage, the rest unstable.
          const all = entries(sizes, 2);
          const stable = splitSeed % (all.length + 1);
          const store = new MemStorage();
          store.applySnapshot({ data: new Uint8Array(0), metadata: { index: 1, term: 1, confState: { voters: [1n], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } } });
          store.append(all.slice(0, stable));
          const log = new RaftLog(store);
          if (stable < all.length) log.append(all.slice(stable));
          const lo = 2 + (loSeed % all.length);
          const hi = lo + (hiSeed % (all.length + 2 - lo + 1));
          const expected = limitSize(all.slice(lo - 2, hi - 2), maxSize);
          expect(indexes(log.slice(lo, hi, maxSize))).toEqual(indexes(expected));
          if (hi <= 2 + stable) expect(indexes(store.entries(lo, hi, maxSize))).toEqual(indexes(expected));
        },
      ),
      { numRuns: 2000 },
    );
  });

  test("a 1 MiB limit cuts a 100k-entry log after the entries that fit", () => {
    const store = new MemStorage();
    store.append(entries(new Array(100_000).fill(256), 1));
    const got = store.entries(1, 100_001, 1024 * 1024);
    // Each entry counts 256 bytes of data plus 12 of framing.
    expect(got.length).toBe(Math.floor((1024 * 1024) / 268));
    expect(got[0].index).toBe(1);
  });

  test("limit 0 still returns one entry (raft-rs max_size_per_msg = 0)", () => {
    const store = new MemStorage();
    store.append(entries([10, 10, 10], 1));
    expect(indexes(store.entries(1, 4, 0))).toEqual([1]);
  });
});
