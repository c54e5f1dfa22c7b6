// Command line of the chain simulator (npm run sim:chain -- ...).
//   --seeds N --from S [--steps M]       a campaign (stops at the first violation unless --keep-going)
//   --seed S [--steps M] [--verbose]     replay one seed; --verbose prints every event as it happens
//   --bug NAME                           build every node with a known defect (repeatable)
// Exit code: 0 when no seed violated an invariant, 1 when one did, 2 on bad arguments.
import { type ChainCampaignSummary, describeChainCampaign, runChainCampaign } from "./campaign.ts";
import { CHAIN_INVARIANTS } from "./checker.ts";
import { CHAIN_BUGS, DEFAULT_STEPS } from "./bugs.ts";
import { parseSimArgs, printReplayAndExit } from "../cli-args.ts";
import { formatChainViolation, simulateChain } from "./sim.ts";

const USAGE = `usage: npm run sim:chain -- [--seeds N] [--from S] [--steps M] [--keep-going] [--bug NAME]
       npm run sim:chain -- --seed S [--steps M] [--verbose] [--bug NAME]
  --seeds N        number of seeds in a campaign (default 100)
  --from S         first seed of a campaign (default 1)
  --steps M        safety-phase steps per seed (default ${DEFAULT_STEPS})
  --seed S         run only seed S and print its result
  --verbose        with --seed: print every event as it happens
  --trace-lines K  events of history in a violation report (default 60)
  --keep-going     do not stop a campaign at the first violation
  --bug NAME       build every node with a known defect (repeatable): ${CHAIN_BUGS.join(", ")}
  --skip NAME      do not enforce one invariant (repeatable): ${CHAIN_INVARIANTS.join(", ")}`;

const { args, int, oneOf } = parseSimArgs("sim:chain", USAGE);

const steps = int("steps", args.steps, DEFAULT_STEPS, 1);
const traceLines = int("trace-lines", args["trace-lines"], 60, 1);
const bugs = args.bug ?? [];
oneOf(bugs, CHAIN_BUGS, "--bug");
const skipInvariants = args.skip ?? [];
oneOf(skipInvariants, CHAIN_INVARIANTS, "invariant");
if (bugs.length > 0) process.stdout.write(`injected defects: ${bugs.join(", ")}\n`);

if (args.seed !== undefined) {
  const seed = int("seed", args.seed, 0, 0);
  const t0 = performance.now();
  const r = await simulateChain({ seed, steps, bugs, skipInvariants, traceLines, onTrace: args.verbose ? (l) => process.stdout.write(`${l}\n`) : undefined });
  printReplayAndExit(r, performance.now() - t0, () => formatChainViolation(r.violation!, steps, bugs));
}

const count = int("seeds", args.seeds, 100, 1);
const from = int("from", args.from, 1, 0);
let done = 0;
const summary: ChainCampaignSummary = await runChainCampaign({
  from,
  count,
  steps,
  bugs,
  skipInvariants,
  stopOnViolation: !args["keep-going"],
  onResult: (r) => {
    done++;
    if (r.violation) process.stdout.write(`${formatChainViolation(r.violation, steps, bugs)}\n`);
    else if (done % 50 === 0) process.stdout.write(`  ${done}/${count} seeds ok\n`);
  },
});
process.stdout.write(`${describeChainCampaign(summary, steps)}\n`);
if (summary.failures.length > 0) {
  process.stdout.write(`failing seeds: ${summary.failures.map((f) => f.seed).join(" ")}\n`);
  process.exit(1);
}
