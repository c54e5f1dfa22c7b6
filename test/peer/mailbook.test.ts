import { describe, expect, test } from "bun:test";
import { Mailbook, type PeerDirectory } from "../../src/peer/mailbook.ts";

const QUIET = 1000;

describe("mailbook", () => {
  test("reports new peers, stays quiet when nothing changes, and forgets nothing on its own", () => {
    const book = new Mailbook({ quietMs: QUIET });
    expect(book.learn(1n, 10n, 0)).toEqual({ kind: "new" });
    expect(book.learn(1n, 10n, 5)).toEqual({ kind: "same" });
    expect(book.origin(1n)).toBe(10n);
    expect(book.size).toBe(1);
  });

  test("a known id moves to another origin only after its origin has been quiet for quietMs", () => {
    const book = new Mailbook({ quietMs: QUIET });
    book.learn(1n, 10n, 0);
    expect(book.learn(1n, 11n, QUIET - 1)).toEqual({ kind: "refused", current: 10n, reason: "alive" });
    book.learn(1n, 10n, 500); // the bound origin speaks again: the quiet period starts over
    expect(book.learn(1n, 11n, 500 + QUIET - 1).kind).toBe("refused");
    expect(book.learn(1n, 11n, 500 + QUIET)).toEqual({ kind: "rebound", previous: 10n, reason: "quiet" });
    expect(book.origin(1n)).toBe(11n);
  });

  test("the origin the network derives from a validator's address wins at once, and from then on only it binds validators", () => {
    const book = new Mailbook({ quietMs: QUIET });
    book.directory = { addressOrigin: (id) => (id < 10n ? 70n + id : undefined), isMember: () => true };
    book.learn(1n, 10n, 0); // before any evidence, the quiet rule governs validators too
    expect(book.addressMode).toBe(false);
    expect(book.learn(1n, 71n, 1)).toEqual({ kind: "rebound", previous: 10n, reason: "address" });
    expect(book.addressMode).toBe(true);
    expect(book.learn(1n, 12n, 10 * QUIET)).toEqual({ kind: "refused", current: 71n, reason: "address" });
    expect(book.learn(2n, 13n, 0)).toEqual({ kind: "refused", current: undefined, reason: "address" });
    expect(book.origin(2n)).toBeUndefined();
    expect(book.learn(20n, 13n, 0)).toEqual({ kind: "new" }); // not a validator: no address rule
    expect(book.origin(1n)).toBe(71n);
  });

  test("forgets an entry only for the origin it names", () => {
    const book = new Mailbook();
    book.learn(1n, 10n, 0);
    expect(book.forget(1n, 99n)).toBe(false);
    expect(book.origin(1n)).toBe(10n);
    expect(book.forget(1n, 10n)).toBe(true);
    expect(book.origin(1n)).toBeUndefined();
  });

  test("is bounded: new ids evict the least recently heard non-member, never a member", () => {
    const book = new Mailbook({ capacity: 3 });
    const members = new Set([1n]);
    const dir: PeerDirectory = { addressOrigin: () => undefined, isMember: (id) => members.has(id) };
    book.directory = dir;
    book.learn(1n, 10n, 0); // a member, heard first
    book.learn(2n, 20n, 1);
    book.learn(3n, 30n, 2);
    book.learn(2n, 20n, 3); // heard again: now the most recent
    for (let id = 4n; id <= 6n; id++) book.learn(id, id * 10n, Number(id));
    expect(book.size).toBe(3);
    expect(book.origin(1n)).toBe(10n);
    expect([...book.entries()].map(([id]) => id).sort()).toEqual([1n, 5n, 6n]);
  });
});
