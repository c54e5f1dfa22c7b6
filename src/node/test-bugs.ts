// Known defects, re-injected only by tests (the chain simulator proves it finds each of them).
// Production wiring never sets any; every check of one is a plain `has()` on an absent set.
export type NodeTestBug =
  /** A controller that lost blocks never gets them again (the chain halts). */
  | "no-recommit"
  /** A leader that must hand over tries once; a lost MsgTimeoutNow halts the chain. */
  | "no-handover-retry"
  /** Votes and append acks leave before their state is durable. */
  | "ack-before-fsync";

export const NODE_TEST_BUGS: readonly NodeTestBug[] = ["no-recommit", "no-handover-retry", "ack-before-fsync"];
