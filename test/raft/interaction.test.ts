// Datadriven interaction tests of the Raft core: every script in test/raft/testdata/ drives real
// RawNodes through commands and compares what they print with the expected output written under
// each command. See test/raft/testdata/README.md for the format and the commands.
//
// REWRITE=1 bun test test/raft/interaction.test.ts   regenerates the expected outputs in place
// (then read the diff: every changed line is a change in the core's behaviour).
import { describe, expect, test } from "bun:test";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Chunk, formatDirective, parseFile } from "./interaction/datadriven.ts";
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
      // The file is in the form a rewrite produces, so a rewrite changes only what changed.
      expect(rewritten).toBe(text);
    });
  }
});

describe("the datadriven file format", () => {
  const reformat = (chunks: Chunk[]) => chunks.map((c) => (c.kind === "text" ? c.text : formatDirective(c.d, c.d.expected))).join("");

  test("commands, arguments, input and output are read apart", () => {
    const chunks = parseFile("# c\n\ncmd 1 2 k=v l=(a, b) m=()\nin 1\nin 2\n----\nout\n\nnext\n----\nok\n", "t");
    const ds = chunks.flatMap((c) => (c.kind === "directive" ? [c.d] : []));
    expect(ds.map((d) => [d.line, d.cmd, d.args, d.input, d.expected])).toEqual([
      [3, "cmd", [{ key: "1", vals: [] }, { key: "2", vals: [] }, { key: "k", vals: ["v"] }, { key: "l", vals: ["a", "b"] }, { key: "m", vals: [] }], ["in 1", "in 2"], "out\n"],
      [9, "next", [], [], "ok\n"],
    ]);
  });

  test("an output with blank lines is read from, and written to, the fenced form", () => {
    const text = "cmd\n----\n----\na\n\nb\n----\n----\n\nz\n----\nok\n";
    const chunks = parseFile(text, "t");
    const first = chunks.find((c) => c.kind === "directive");
    expect(first?.kind === "directive" && first.d.expected).toBe("a\n\nb\n");
    expect(reformat(chunks)).toBe(text);
  });

  test("a directive without its separator is an error that names the line", () => {
    expect(() => parseFile("# c\ncmd\nno separator\n", "t.txt")).toThrow("t.txt:2");
  });
});
