import { describe, expect, test } from "bun:test";
import { Mailbook } from "../src/peer/mailbook.ts";

describe("mailbook", () => {
  test("reports new peers and changed origins, and stays quiet when nothing changes", () => {
    const book = new Mailbook();
    expect(book.learn(1n, 10n)).toEqual({ id: 1n, origin: 10n, previous: undefined });
    expect(book.learn(1n, 10n)).toBeUndefined();
    expect(book.learn(1n, 11n)).toEqual({ id: 1n, origin: 11n, previous: 10n });
    expect(book.origin(1n)).toBe(11n);
    expect(book.size).toBe(1);
  });

  test("forgets an entry only for the origin it names", () => {
    const book = new Mailbook();
    book.learn(1n, 10n);
    expect(book.forget(1n, 99n)).toBe(false);
    expect(book.origin(1n)).toBe(10n);
    expect(book.forget(1n, 10n)).toBe(true);
    expect(book.origin(1n)).toBeUndefined();
  });

  test("is bounded: a flood of ids from the wire evicts the oldest, not the newest", () => {
    const book = new Mailbook(3);
    for (let id = 1n; id <= 5n; id++) book.learn(id, id * 10n);
    expect(book.size).toBe(3);
    expect([...book.entries()]).toEqual([
      [3n, 30n],
      [4n, 40n],
      [5n, 50n],
    ]);
    book.learn(4n, 41n); // an update is not an insertion: nothing is evicted
    expect(book.size).toBe(3);
    expect(book.origin(3n)).toBe(30n);
  });
});
