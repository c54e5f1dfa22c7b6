// Membership change properties (etcd confchange/quick_test.go and restore_test.go): a sequence of
// single changes applied one by one with `simple` ends in the same configuration as applying them
// all at once through a joint configuration; restoreConfState(toConfState(cfg)) rebuilds cfg.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { Changer, ConfChangeError, restoreConfState } from "../../src/raft/confchange/changer.ts";
import { ProgressTracker } from "../../src/raft/tracker/tracker.ts";
import { type ConfChangeSingle, ConfChangeType, type ConfState, confStateEqual, newConfState } from "../../src/raft/types.ts";

/** Generous: the machine is shared with other engineers' test runs. */
const PROPERTY_TIMEOUT = 30_000;
const RUNS = { numRuns: 1000 };
const LAST_INDEX = 10;

/** Node 1 is always the first voter and never touched afterwards, so no change removes every voter. */
const setupArb: fc.Arbitrary<ConfChangeSingle[]> = fc
  .array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 5 })
  .map((ids) => [1, ...ids].map((id) => ({ changeType: ConfChangeType.AddNode, nodeId: BigInt(id) })));

const changesArb: fc.Arbitrary<ConfChangeSingle[]> = fc.array(
  fc.record({
    changeType: fc.constantFrom(ConfChangeType.AddNode, ConfChangeType.RemoveNode, ConfChangeType.AddLearnerNode),
    nodeId: fc.integer({ min: 2, max: 10 }).map(BigInt),
  }),
  { minLength: 1, maxLength: 9 },
);

function simpleEach(t: ProgressTracker, ccs: ConfChangeSingle[]): void {
  for (const cc of ccs) {
    const [cfg, changes] = new Changer(t).simple([cc]);
    t.applyConf(cfg, changes, LAST_INDEX);
  }
}

function trackerWith(setup: ConfChangeSingle[]): ProgressTracker {
  const t = new ProgressTracker(10);
  simpleEach(t, setup);
  return t;
}

/** Everything a configuration change can affect: the ConfState and each member's Progress. */
function snapshotOf(t: ProgressTracker): { cs: ConfState; progress: [string, string][] } {
  const progress = [...t.progress.entries()].map(([id, pr]): [string, string] => [id.toString(), pr.toString()]).sort();
  return { cs: t.confState(), progress };
}

describe("confchange quick (etcd TestConfChangeQuick)", () => {
  test("single changes one by one with simple() equal enterJoint(changes) + leaveJoint()", () => {
    fc.assert(
      fc.property(setupArb, changesArb, (setup, ccs) => {
        const viaSimple = trackerWith(setup);
        simpleEach(viaSimple, ccs);

        const viaJoint = trackerWith(setup);
        const [cfg, changes] = new Changer(viaJoint).enterJoint(false, ccs);
        // autoLeave only sets the flag: the same joint configuration and progress changes.
        const [cfgAuto, changesAuto] = new Changer(viaJoint).enterJoint(true, ccs);
        expect(cfgAuto.autoLeave).toBe(true);
        expect({ ...cfgAuto.toConfState(), autoLeave: false }).toEqual(cfg.toConfState());
        expect(changesAuto).toEqual(changes);
        viaJoint.applyConf(cfg, changes, LAST_INDEX);
        expect(viaJoint.conf.voters.isJoint()).toBe(true);
        const [left, leftChanges] = new Changer(viaJoint).leaveJoint();
        viaJoint.applyConf(left, leftChanges, LAST_INDEX);

        expect(snapshotOf(viaJoint)).toEqual(snapshotOf(viaSimple));
      }),
      RUNS,
    );
  }, PROPERTY_TIMEOUT);

  test("a Changer never modifies the tracker it reads (changes take effect only through applyConf)", () => {
    fc.assert(
      fc.property(setupArb, changesArb, (setup, ccs) => {
        const t = trackerWith(setup);
        const before = snapshotOf(t);
        new Changer(t).enterJoint(true, ccs);
        expect(snapshotOf(t)).toEqual(before);
      }),
      RUNS,
    );
  }, PROPERTY_TIMEOUT);
});

describe("restoreConfState", () => {
  test("restoreConfState(toConfState(cfg)) round-trips simple and joint configurations", () => {
    fc.assert(
      fc.property(setupArb, changesArb, fc.constantFrom("simple", "joint", "joint-auto"), (setup, ccs, mode) => {
        const t = trackerWith(setup);
        if (mode === "simple") simpleEach(t, ccs);
        else {
          const [cfg, changes] = new Changer(t).enterJoint(mode === "joint-auto", ccs);
          t.applyConf(cfg, changes, LAST_INDEX);
        }
        const cs = t.confState();
        const restored = new ProgressTracker(10);
        restoreConfState(restored, LAST_INDEX, cs);
        expect(snapshotOf(restored)).toEqual(snapshotOf(t));
      }),
      RUNS,
    );
  }, PROPERTY_TIMEOUT);

  test("a ConfState no sequence of changes can produce either throws or visibly fails to round-trip", () => {
    // Like etcd's confchange.Restore, the replay does not validate: callers (Raft.restore, the Raft
    // constructor) must compare the result with the input and refuse a mismatch.
    const invalid: [string, ConfState, boolean][] = [
      ["no voters, only a learner", newConfState({ learners: [2n] }), true],
      ["a voter that is also a learner", newConfState({ voters: [1n, 2n], learners: [2n] }), false],
      ["learners_next outside a joint config", newConfState({ voters: [1n, 2n], learnersNext: [2n] }), false],
      ["auto_leave outside a joint config", newConfState({ voters: [1n, 2n], autoLeave: true }), false],
      ["a duplicated voter id", newConfState({ voters: [1n, 2n, 2n] }), false],
      ["a learner that is also an outgoing voter", newConfState({ voters: [1n], votersOutgoing: [1n, 2n], learners: [2n] }), false],
    ];
    for (const [name, cs, throws] of invalid) {
      const t = new ProgressTracker(10);
      if (throws) expect(() => restoreConfState(t, LAST_INDEX, cs), name).toThrow(ConfChangeError);
      else {
        restoreConfState(t, LAST_INDEX, cs);
        expect(confStateEqual(t.confState(), cs), name).toBe(false);
      }
    }
  });
});
