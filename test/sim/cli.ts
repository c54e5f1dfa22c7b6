// Command line for long simulation campaigns and for replaying one seed.
//   bun run test/sim/cli.ts --seeds 5000 --steps 5000          a campaign from seed 1
//   bun run test/sim/cli.ts --seed 4242 --steps 2000 --verbose  replay one seed with its full trace
//   bun run test/sim/cli.ts --seeds 300 --bug grantVoteWithoutLogCheck
// Exit code: 0 when no seed violated an invariant, 1 when one did, 2 on bad arguments.
import { RAFT_TEST_BUGS, type RaftTestBug } from "../../src/raft/config.ts";
import { describeSummary, runCampaign } from "./campaign.ts";
import { INVARIANTS } from "./checker.ts";
import { formatViolation } from "./report.ts";
import { simulate } from "./sim.ts";
import { parseSimArgs, printReplayAndExit } from "./cli-args.ts";

const USAGE = `usage: bun run test/sim/cli.ts [--seeds N] [--from S] [--steps M] [--keep-going]
       bun run test/sim/cli.ts --seed S [--steps M] [--verbose] [--trace-lines K]
  --seeds N        number of seeds in a campaign (default 100)
  --from S         first seed of a campaign (default 1)
  --steps M        safety-phase steps per seed (default 2000)
  --seed S         run only seed S and print its result
  --verbose        with --seed: print every event as it happens
  --trace-lines K  events of history in a violation report (default 40)
  --keep-going     do not stop a campaign at the first violation
  --bug NAME       build every node with a deliberate core bug (repeatable): ${RAFT_TEST_BUGS.join(", ")}
  --ack-before-fsync  simulate an application that sends vote grants and append acks before its fsync
  --skip NAME      do not enforce one invariant (repeatable), to see what the others catch:
                   ${INVARIANTS.join(", ")}`;

const { args, int, oneOf } = parseSimArgs("sim", USAGE, ["ack-before-fsync"]);

const steps = int("steps", args.steps, 2000, 1);
const traceLines = int("trace-lines", args["trace-lines"], 40, 1);
oneOf(args.bug ?? [], RAFT_TEST_BUGS, "--bug");
const testBugs = new Set(args.bug as RaftTestBug[] | undefined);
for (const bug of testBugs) process.stdout.write(`injected core bug: ${bug}\n`);

const skipInvariants = args.skip ?? [];
oneOf(skipInvariants, INVARIANTS, "invariant");

if (args.seed !== undefined) {
  const seed = int("seed", args.seed, 0, 0);
  const t0 = performance.now();
  const r = simulate({ seed, steps, traceLines, skipInvariants, ackBeforeFsync: args["ack-before-fsync"], testBugs, onTrace: args.verbose ? (l) => process.stdout.write(`${l}\n`) : undefined });
  printReplayAndExit(r, performance.now() - t0, () => formatViolation(r.violation!));
}

const count = int("seeds", args.seeds, 100, 1);
const from = int("from", args.from, 1, 0);
let done = 0;
const summary = runCampaign({
  from,
  count,
  steps,
  skipInvariants,
  ackBeforeFsync: args["ack-before-fsync"],
  testBugs,
  stopOnViolation: !args["keep-going"],
  onResult: (r) => {
    done++;
    if (r.violation) process.stdout.write(`${formatViolation(r.violation)}\n`);
    else if (done % 100 === 0) process.stdout.write(`  ${done}/${count} seeds ok\n`);
  },
});
process.stdout.write(`${describeSummary(summary, steps)}\n`);
if (summary.failures.length > 0) {
  process.stdout.write(`failing seeds: ${summary.failures.map((f) => f.seed).join(" ")}\n`);
  process.exit(1);
}
