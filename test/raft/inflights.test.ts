// Inflights: the ring of in-flight MsgAppend last-indexes per follower, bounded by count and bytes
// (etcd tracker/inflights_test.go, raft-rs inflights tests).
import { describe, expect, test } from "bun:test";
import { Inflights } from "../../src/raft/tracker/inflights.ts";

/** Adds index i with 100+i bytes for i in [from, to). */
function addRange(in_: Inflights, from: number, to: number): void {
  for (let i = from; i < to; i++) in_.add(i, 100 + i);
}

const bytesOf = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => 100 + from + k).reduce((a, b) => a + b, 0);
const state = (in_: Inflights) => ({ count: in_.count, bytes: in_.bytes, full: in_.full() });

describe("Inflights", () => {
  test("TestInflightsAdd: counts and bytes grow until the window is full; adding to a full window throws", () => {
    const in_ = new Inflights(10);
    addRange(in_, 0, 5);
    expect(state(in_)).toEqual({ count: 5, bytes: bytesOf(0, 5), full: false });
    addRange(in_, 5, 10);
    expect(state(in_)).toEqual({ count: 10, bytes: bytesOf(0, 10), full: true });
    expect(() => in_.add(10, 1)).toThrow();
  });

  test("TestInflightFreeTo: freeTo frees every message whose last index is <= the ack, across the ring's wrap-around", () => {
    const in_ = new Inflights(10);
    addRange(in_, 0, 10);
    in_.freeTo(0);
    expect(state(in_)).toEqual({ count: 9, bytes: bytesOf(1, 10), full: false });
    in_.freeTo(4);
    expect(state(in_)).toEqual({ count: 5, bytes: bytesOf(5, 10), full: false });
    in_.freeTo(8);
    expect(state(in_)).toEqual({ count: 1, bytes: bytesOf(9, 10), full: false });

    // 10..14 go into the slots freed at the front of the ring: the window wraps.
    addRange(in_, 10, 15);
    expect(state(in_)).toEqual({ count: 6, bytes: bytesOf(9, 15), full: false });
    // A stale ack below the oldest message frees nothing.
    in_.freeTo(3);
    expect(in_.count).toBe(6);
    in_.freeTo(12);
    expect(state(in_)).toEqual({ count: 2, bytes: bytesOf(13, 15), full: false });
    in_.freeTo(14);
    expect(state(in_)).toEqual({ count: 0, bytes: 0, full: false });

    // The emptied window accepts a full ring again.
    addRange(in_, 15, 25);
    expect(state(in_)).toEqual({ count: 10, bytes: bytesOf(15, 25), full: true });
  });

  test("TestInflightFreeFirstOne: freeFirstOne frees exactly the oldest message, also after a wrap-around", () => {
    const in_ = new Inflights(10);
    addRange(in_, 0, 10);
    in_.freeFirstOne();
    expect(state(in_)).toEqual({ count: 9, bytes: bytesOf(1, 10), full: false });

    in_.freeTo(7);
    addRange(in_, 10, 18); // wraps
    expect(in_.full()).toBe(true);
    for (let oldest = 8; oldest < 18; oldest++) {
      in_.freeFirstOne();
      expect(state(in_)).toEqual({ count: 17 - oldest, bytes: bytesOf(oldest + 1, 18), full: false });
    }
    in_.freeFirstOne();
    expect(in_.count).toBe(0);
  });

  test("freeTo in the middle of a message range keeps that message in flight", () => {
    // Each message covers several entries; its slot holds its last index.
    const in_ = new Inflights(4);
    in_.add(5, 50);
    in_.add(9, 40);
    in_.freeTo(7);
    expect(state(in_)).toEqual({ count: 1, bytes: 40, full: false });
    in_.freeTo(9);
    expect(state(in_)).toEqual({ count: 0, bytes: 0, full: false });
  });

  test("TestInflightsFull: the window is full at the message limit or once the byte budget is reached", () => {
    // [name, size, maxBytes, fullAt, freeTo, againAt]: add 100+i bytes for i = 0, 1, ...
    const cases: [string, number, number, number, number, number][] = [
      ["always-full", 0, 0, 0, 0, 0],
      ["single-entry", 1, 0, 1, 1, 2],
      ["single-entry-overflow", 1, 10, 1, 1, 2],
      ["multi-entry", 15, 0, 15, 6, 22],
      ["slight-overflow", 8, 400, 4, 2, 7],
      ["exact-max-bytes", 8, 406, 4, 3, 8],
      ["larger-overflow", 15, 408, 5, 1, 6],
    ];
    for (const [name, size, maxBytes, fullAt, freeTo, againAt] of cases) {
      const in_ = new Inflights(size, maxBytes);
      const addUntilFull = (from: number, to: number) => {
        for (let i = from; i < to; i++) {
          expect(in_.full(), `${name}: full at ${i}, want ${to}`).toBe(false);
          in_.add(i, 100 + i);
        }
        expect(in_.full(), `${name}: not full at ${to}`).toBe(true);
      };
      addUntilFull(0, fullAt);
      if (fullAt === 0) continue;
      in_.freeTo(freeTo);
      addUntilFull(fullAt, againAt);
    }
  });

  test("a single message larger than the byte budget is still admitted into an empty window (progress is never blocked)", () => {
    const in_ = new Inflights(8, 100);
    expect(in_.full()).toBe(false);
    in_.add(1, 1000);
    expect(state(in_)).toEqual({ count: 1, bytes: 1000, full: true });
    in_.freeTo(1);
    expect(state(in_)).toEqual({ count: 0, bytes: 0, full: false });
  });

  test("reset empties the window, count and bytes", () => {
    const in_ = new Inflights(3, 250);
    addRange(in_, 0, 3);
    expect(in_.full()).toBe(true);
    in_.reset();
    expect(state(in_)).toEqual({ count: 0, bytes: 0, full: false });
    addRange(in_, 7, 9);
    in_.freeTo(7);
    expect(state(in_)).toEqual({ count: 1, bytes: 108, full: false });
  });
});
