import { describe, expect, test } from "bun:test";
import { nextConfChange, removesNode } from "../../src/node/membership.ts";
import { ConfChangeTransition, ConfChangeType, newConfState } from "../../src/raft/index.ts";

const ids = (cc: ReturnType<typeof nextConfChange>) =>
  cc?.changes.map((c) => `${c.changeType === ConfChangeType.AddNode ? "+" : "-"}${c.nodeId}`) ?? [];

describe("validators -> ConfChangeV2 (the Rust service's membership rules)", () => {
  test("voters that match the validators need no change", () => {
    expect(nextConfChange(newConfState({ voters: [1n, 2n, 3n] }), [3n, 1n, 2n])).toBeUndefined();
  });

  test("one validator added or removed is a single (simple) change", () => {
    expect(ids(nextConfChange(newConfState({ voters: [1n, 2n, 3n] }), [1n, 2n, 3n, 4n]))).toEqual(["+4"]);
    expect(ids(nextConfChange(newConfState({ voters: [1n, 2n, 3n] }), [1n, 2n]))).toEqual(["-3"]);
  });

  test("a partial replacement adds and removes in one change with the Auto transition (joint, auto-leave)", () => {
    const cc = nextConfChange(newConfState({ voters: [1n, 2n, 3n, 4n] }), [1n, 2n, 3n, 5n])!;
    expect(ids(cc)).toEqual(["+5", "-4"]);
    expect(cc.transition).toBe(ConfChangeTransition.Auto);
  });

  test("shrinking to one validator removes all others at once", () => {
    expect(ids(nextConfChange(newConfState({ voters: [1n, 2n, 3n, 4n] }), [4n]))).toEqual(["-1", "-2", "-3"]);
  });

  test("a complete replacement first adds the new validators; the removal comes once they are voters", () => {
    const first = nextConfChange(newConfState({ voters: [1n, 2n] }), [3n, 4n]);
    expect(ids(first)).toEqual(["+3", "+4"]);
    const second = nextConfChange(newConfState({ voters: [1n, 2n, 3n, 4n] }), [3n, 4n]);
    expect(ids(second)).toEqual(["-1", "-2"]);
  });

  test("an empty validator list never empties the cluster", () => {
    expect(nextConfChange(newConfState({ voters: [1n, 2n] }), [])).toBeUndefined();
  });

  test("removesNode tells whether the leader would remove itself", () => {
    const cc = nextConfChange(newConfState({ voters: [1n, 2n, 3n] }), [2n, 3n])!;
    expect(removesNode(cc, 1n)).toBe(true);
    expect(removesNode(cc, 2n)).toBe(false);
  });
});
