// `consensus demo`: a local chain on loopback. The controller and network emulators run in this
// process; N `consensus run` processes of this same binary do the consensus. It shows height,
// leader, term and commit latency live, and lets the user take the leader down and watch the
// failover (keys on a terminal, or --kill-leader-after for a scripted run).
import { defineCommand } from "citty";
import { writeSync } from "node:fs";
import { sleep } from "../devchain/wait.ts";
import { DemoSession } from "./demo-session.ts";
import { renderFrame, renderLine } from "./demo-view.ts";
import { CheckFailed, UsageError } from "./errors.ts";

const COMMAND = "consensus demo";
const REFRESH_MS = 250;
const PLAIN_LINE_MS = 1000;
/** The scripted run restarts the killed leader once the chain has gone this many blocks further. */
const RESTART_AFTER_BLOCKS = 2;
const KEYS_HELP = "keys: k kill -9 the leader · s stop the leader (SIGTERM) · r restart stopped nodes · q quit";

function integer(flag: string, text: string, min: number, max: number): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max)) throw new UsageError(`--${flag} '${text}' must be a whole number in ${min}..${max}`, COMMAND);
  return n;
}

function secondsToMs(flag: string, text: string): number {
  const s = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(s > 0 && s <= 86_400)) throw new UsageError(`--${flag} '${text}' must be a number of seconds in (0, 86400]`, COMMAND);
  return Math.round(s * 1000);
}

/**
 * argv that runs this program again: the compiled binary itself (its entry script lives in the
 * embedded /$bunfs file system), or bun with the entry script.
 */
export function selfCommand(): string[] {
  const compiled = Bun.main.startsWith("/$bunfs/") || Bun.main.includes("~BUN");
  return compiled ? [process.execPath] : [process.execPath, Bun.main];
}

function out(text: string): void {
  try {
    writeSync(1, text);
  } catch {
    // stdout closed by the reader: keep running, Ctrl-C still stops
  }
}

export default defineCommand({
  meta: { name: "demo", description: "run a local chain on loopback and watch Raft at work (built-in controller and network emulators)" },
  args: {
    nodes: { type: "string", default: "3", valueHint: "n", description: "number of consensus nodes, 1..9" },
    "block-interval": { type: "string", default: "1", valueHint: "seconds", description: "block interval, 0..60 (0: next block at once)" },
    duration: { type: "string", valueHint: "seconds", description: "stop after this long (default: until q or Ctrl-C)" },
    "kill-leader-after": {
      type: "string",
      valueHint: "seconds",
      description: "kill -9 the leader after this long; it is restarted once the chain has moved on",
    },
    keep: { type: "boolean", description: "keep the work dir (configs, Raft data, node logs)" },
  },
  async run({ args }) {
    const nodes = integer("nodes", args.nodes, 1, 9);
    const blockInterval = integer("block-interval", args["block-interval"], 0, 60);
    const durationMs = args.duration === undefined ? undefined : secondsToMs("duration", args.duration);
    const killAfterMs = args["kill-leader-after"] === undefined ? undefined : secondsToMs("kill-leader-after", args["kill-leader-after"]);
    if (killAfterMs !== undefined && durationMs !== undefined && killAfterMs >= durationMs) {
      throw new UsageError("--kill-leader-after must be shorter than --duration", COMMAND);
    }

    const terminal = process.stdout.isTTY === true;
    const keys = process.stdin.isTTY === true;
    const title = `consensus demo · ${nodes} node${nodes === 1 ? "" : "s"} · block interval ${blockInterval} s`;
    const quit = new AbortController();
    const onSignal = () => quit.abort();
    // SIGHUP: the terminal went away; the nodes must not outlive the demo.
    const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
    for (const sig of signals) process.on(sig, onSignal);
    out(`${title}\n`);
    let session: DemoSession;
    try {
      session = await DemoSession.start({
        nodes,
        blockInterval,
        consensusCommand: selfCommand(),
        keepWorkDir: args.keep === true,
        onEvent: (line) => {
          if (!terminal) out(`${line}\n`);
        },
      });
    } catch (e) {
      for (const sig of signals) process.off(sig, onSignal);
      throw e;
    }
    out(`work dir ${session.chain.workDir} (node<i>/config.toml, node<i>/consensus.log)\n`);
    if (!terminal) out(keys ? `${KEYS_HELP}\n` : "Ctrl-C stops\n");

    let busy = false;
    /** Runs one action at a time; false if another is still running. */
    const act = (action: () => unknown): boolean => {
      if (busy) return false;
      busy = true;
      void Promise.resolve()
        .then(action)
        .finally(() => (busy = false));
      return true;
    };
    const onKey = (data: Buffer) => {
      for (const ch of data.toString("utf8")) {
        if (ch === "q" || ch === "\x03") quit.abort();
        else if (ch === "k") act(() => session.takeLeaderDown("kill"));
        else if (ch === "s") act(() => session.takeLeaderDown("stop"));
        else if (ch === "r") act(() => session.restartStopped());
      }
    };
    if (keys) {
      process.stdin.setRawMode(true);
      process.stdin.on("data", onKey);
      process.stdin.resume();
    }

    let drawn = 0;
    const draw = (final = false) => {
      // Longer lines would wrap and break the redraw; an unknown width (0) means no cut.
      const columns = process.stdout.columns;
      const width = columns > 0 ? Math.max(20, columns - 1) : Infinity;
      const lines = renderFrame(session.view(), title, final ? undefined : keys ? KEYS_HELP : "Ctrl-C stops").map((l) => l.slice(0, width));
      out(`${drawn > 0 ? `\x1b[${drawn}F` : "\x1b[?25l"}${lines.map((l) => `\x1b[2K${l}\n`).join("")}\x1b[J`);
      drawn = lines.length;
    };

    let killed = false;
    let restarted = false;
    let lastLine = 0;
    try {
      try {
        while (!quit.signal.aborted) {
          await session.refresh();
          const elapsed = Date.now() - session.startedAt;
          if (durationMs !== undefined && elapsed >= durationMs) break;
          if (session.allCrashed()) break;
          if (killAfterMs !== undefined && !killed && elapsed >= killAfterMs && session.leader() !== undefined) {
            killed = act(() => session.takeLeaderDown("kill"));
          }
          const f = session.lastFailover();
          const top = Math.max(...session.chain.heights());
          if (killed && !restarted && f?.resumedAt !== undefined && top >= f.resumedAt + RESTART_AFTER_BLOCKS) {
            restarted = act(() => session.restartStopped());
          }
          if (terminal) draw();
          else if (elapsed - lastLine >= PLAIN_LINE_MS) {
            lastLine = elapsed;
            out(`${renderLine(session.view())}\n`);
          }
          await sleep(REFRESH_MS, quit.signal).catch(() => {});
        }
        if (terminal) draw(true);
      } finally {
        if (keys) {
          process.stdin.off("data", onKey);
          process.stdin.setRawMode(false);
          process.stdin.pause();
        }
        if (terminal) out("\x1b[?25h");
        // From here further signals are ignored: close() is bounded (SIGKILL after a short grace).
        for (const sig of signals) {
          process.off(sig, onSignal);
          process.on(sig, ignore);
        }
      }
    } finally {
      out("stopping the chain…\n");
      const outcome = await session.close().finally(() => signals.forEach((sig) => process.off(sig, ignore)));
      out(`${outcome.lines.join("\n")}\n`);
      if (!outcome.ok) throw new CheckFailed("demo failed: a fork or a crashed node (see above)");
    }
  },
});

function ignore(): void {}
