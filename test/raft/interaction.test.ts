// Datadriven interaction tests of the Raft core: every script in test/raft/testdata/ drives real
// RawNodes through commands and compares what they print with the expected output written under
// each command. See test/raft/testdata/README.md for the format and the commands.
//
// REWRITE=1 bun test test/raft/interaction.test.ts   regenerates the expected outputs in place
// (then read the diff: every changed line is a change in the core's behaviour).
import { describe, expect, test } from "bun:test";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runScript } from "./interaction/run.ts";

const DIR = join(import.meta.dir, "testdata");
const REWRITE = process.env.REWRITE === "1";
const files = readdirSync(DIR).filter((f) => f.endsWith(".txt")).sort();

describe("raft interaction scripts", () => {
  test("there are scripts to run", () => {
    expect(files.length).toBeGreaterThan(0);
  });

  for (const f of files) {
    test(f, () => {
      const path = join(DIR, f);
      const text = readFileSync(path, "utf8");
      const { results, rewritten } = runScript(text, f);
      if (REWRITE) {
        if (rewritten !== text) writeFileSync(path, rewritten);
        return;
      }
      for (const r of results) {
        // One directive at a time, so a failure names the line of the script that diverged.
        expect(`${f}:${r.d.line}: ${r.d.source}\n${r.actual}`).toBe(`${f}:${r.d.line}: ${r.d.source}\n${r.d.expected}`);
      }
    });
  }
});
