import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { gunzipSync } from "node:zlib";
import type { LogObject } from "consola/core";
import type { LogLevel } from "../../src/config/types.ts";
import { RotatingFileSink } from "../../src/log/file-sink.ts";
import { formatLine } from "../../src/log/format.ts";
import { createLogger, openSink } from "../../src/log/logger.ts";
import type { Sink } from "../../src/log/sinks.ts";

const ROOT = resolve(import.meta.dir, "../..");
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "consensus-log-"));
  dirs.push(dir);
  return dir;
}

class MemorySink implements Sink {
  lines: string[] = [];
  write(line: string) {
    this.lines.push(line);
  }
  async flush() {}
}

const lineNo = (i: number) => `line ${String(i).padStart(5, "0")} ${"x".repeat(60)}\n`;

function obj(partial: Partial<LogObject>): LogObject {
  return { date: new Date("2026-11-27T11:46:00.123Z"), type: "info", level: 3, tag: "", args: [], ...partial } as LogObject;
}

describe("line format", () => {
  test("ISO time, level, tag, message, then key=value fields", () => {
    const line = formatLine(obj({ tag: "network", args: ["block committed", { height: 5, leader: "0x52637c58fd4bfda4" }] }));
    expect(line).toBe("2026-11-27T11:46:00.123Z INFO [network] block committed height=5 leader=0x52637c58fd4bfda4\n");
  });

  test("values are rendered so that the line splits back into its fields", () => {
    const line = formatLine(
      obj({
        args: [
          "m",
          {
            spaced: "a b",
            empty: "",
            quote: 'say "hi"',
            eq: "k=v",
            big: 2n ** 64n - 1n,
            bytes: new Uint8Array([0, 1, 0xab]),
            error: new Error("connect ECONNREFUSED 127.0.0.1:50000"),
            list: [1, "x y", 3n],
            nested: { id: 7n, name: "n" },
            nested_spaced: { s: "a b" },
            none: null,
            flag: false,
          },
        ],
      }),
    );
    expect(line).toBe(
      "2026-11-27T11:46:00.123Z INFO m spaced=\"a b\" empty=\"\" quote=\"say \\\"hi\\\"\" eq=\"k=v\" " +
        "big=18446744073709551615 bytes=0001ab error=\"connect ECONNREFUSED 127.0.0.1:50000\" " +
        'list=[1,"x y",3] nested={"id":"7","name":"n"} nested_spaced="{\\"s\\":\\"a b\\"}" none=null flag=false\n',
    );
  });

  test("an event is always one line, whatever the message holds", () => {
    const line = formatLine(obj({ args: ["two\nlines\r\tand tab", { v: "x\ny" }] }));
    expect(line).toBe('2026-11-27T11:46:00.123Z INFO two\\nlines\\r\\tand tab v="x\\ny"\n');
    expect(line.indexOf("\n")).toBe(line.length - 1);
  });

  test("an Error as the message is its message; extra plain values follow", () => {
    expect(formatLine(obj({ type: "error", level: 0, args: [new Error("boom"), 42, "more words"] }))).toBe(
      '2026-11-27T11:46:00.123Z ERROR boom 42 "more words"\n',
    );
  });

  test.each([
    ["fatal", 0, "CRITICAL"],
    ["error", 0, "ERROR"],
    ["warn", 1, "WARN"],
    ["log", 2, "INFO"],
    ["success", 3, "INFO"],
    ["debug", 4, "DEBUG"],
    ["trace", 5, "TRACE"],
  ])("consola type %p is written as %p", (type, level, name) => {
    expect(formatLine(obj({ type: type as LogObject["type"], level: level as LogObject["level"], args: ["m"] }))).toBe(
      `2026-11-27T11:46:00.123Z ${name} m\n`,
    );
  });
});

describe("createLogger", () => {
  function emitAll(level: LogLevel): string[] {
    const sink = new MemorySink();
    const log = createLogger({ level, sink });
    log.trace("t");
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
    log.fatal("c");
    return sink.lines.map((l) => l.split(" ")[1]);
  }

  test.each([
    ["trace", ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "CRITICAL"]],
    ["debug", ["DEBUG", "INFO", "WARN", "ERROR", "CRITICAL"]],
    ["info", ["INFO", "WARN", "ERROR", "CRITICAL"]],
    ["warn", ["WARN", "ERROR", "CRITICAL"]],
    ["error", ["ERROR", "CRITICAL"]],
    ["critical", ["CRITICAL"]],
  ])("level %p lets through %p", (level, expected) => {
    expect(emitAll(level as LogLevel)).toEqual(expected);
  });

  test("repeated messages are written at once, each on its own line (consola throttling is off)", () => {
    const sink = new MemorySink();
    const log = createLogger({ level: "info", sink });
    for (let i = 0; i < 20; i++) log.info("same message");
    expect(sink.lines).toHaveLength(20);
    expect(new Set(sink.lines.map((l) => l.slice(25)))).toEqual(new Set(["INFO same message\n"]));
  });

  test("child loggers carry their tag", () => {
    const sink = new MemorySink();
    createLogger({ level: "info", sink }).withTag("node").withTag("raft").info("x", { term: 2 });
    expect(sink.lines[0].slice(25)).toBe("INFO [node:raft] x term=2\n");
  });

  test("openSink writes to <log_dir>/<log_file_name>, creating the directory", async () => {
    const dir = join(tempDir(), "nested", "logs");
    const sink = openSink({
      logToStdout: false,
      logDir: dir,
      logFileName: "svc.log",
      logRotateSize: 1 << 20,
      logRotateKeep: 5,
      logRotateCompress: false,
    });
    createLogger({ level: "info", sink }).info("hello", { a: 1 });
    await sink.flush();
    expect(readFileSync(join(dir, "svc.log"), "utf8")).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO hello a=1\n$/);
  });

  test("openSink fails with one readable line when the log file cannot be created", () => {
    const file = join(tempDir(), "plain-file");
    writeFileSync(file, "");
    const open = () =>
      openSink({
        logToStdout: false,
        logDir: file,
        logFileName: "x.log",
        logRotateSize: 100,
        logRotateKeep: 1,
        logRotateCompress: false,
      });
    expect(open).toThrow(`cannot open log file "${join(file, "x.log")}": a parent of the path exists but is not a directory`);
  });
});

describe("rotating file sink", () => {
  function writeLines(sink: Sink, from: number, to: number) {
    for (let i = from; i < to; i++) sink.write(lineNo(i));
  }

  /** Concatenation of the kept files, oldest first, decompressing `.gz`. */
  function keptText(path: string, keep: number, gz: boolean): string {
    let text = "";
    for (let i = keep - 1; i >= 0; i--) {
      const rotated = `${path}.${i}${gz ? ".gz" : ""}`;
      if (existsSync(rotated)) text += gz ? gunzipSync(readFileSync(rotated)).toString() : readFileSync(rotated, "utf8");
    }
    return text + readFileSync(path, "utf8");
  }

  const allLines = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => lineNo(from + k)).join("");

  test("rotates by size into name.0 (newest) .. name.<keep-1>; the kept files are the newest lines in order", async () => {
    const dir = tempDir();
    const sink = new RotatingFileSink({ dir, fileName: "c.log", rotateSize: 1000, keep: 3, compress: false });
    writeLines(sink, 0, 200);
    await sink.flush();
    const path = join(dir, "c.log");
    expect(readdirSync(dir).sort()).toEqual(["c.log", "c.log.0", "c.log.1", "c.log.2"]);
    for (const f of readdirSync(dir)) expect(statSync(join(dir, f)).size).toBeLessThanOrEqual(1000);
    const kept = keptText(path, 3, false);
    expect(allLines(0, 200).endsWith(kept)).toBe(true);
    expect(kept.startsWith(lineNo(200 - kept.split("\n").length + 1))).toBe(true);
    expect(kept.length).toBeGreaterThan(3000); // three full rotated files plus the live one
  });

  test("an existing file is appended to and counts toward the rotation size", async () => {
    const dir = tempDir();
    const path = join(dir, "c.log");
    writeFileSync(path, "x".repeat(950) + "\n");
    const sink = new RotatingFileSink({ dir, fileName: "c.log", rotateSize: 1000, keep: 2, compress: false });
    sink.write(lineNo(0));
    await sink.flush();
    expect(readFileSync(`${path}.0`, "utf8")).toBe("x".repeat(950) + "\n");
    expect(readFileSync(path, "utf8")).toBe(lineNo(0));
  });

  test("keep = 0 keeps no rotated file", async () => {
    const dir = tempDir();
    const sink = new RotatingFileSink({ dir, fileName: "c.log", rotateSize: 500, keep: 0, compress: true });
    writeLines(sink, 0, 50);
    await sink.flush();
    expect(readdirSync(dir)).toEqual(["c.log"]);
    expect(allLines(0, 50).endsWith(readFileSync(join(dir, "c.log"), "utf8"))).toBe(true);
  });

  test("a line longer than the rotation size gets a file of its own", async () => {
    const dir = tempDir();
    const sink = new RotatingFileSink({ dir, fileName: "c.log", rotateSize: 100, keep: 5, compress: false });
    const long = "L".repeat(300) + "\n";
    sink.write("short\n");
    sink.write(long);
    sink.write("after\n");
    await sink.flush();
    const path = join(dir, "c.log");
    expect(readFileSync(`${path}.1`, "utf8")).toBe("short\n");
    expect(readFileSync(`${path}.0`, "utf8")).toBe(long);
    expect(readFileSync(path, "utf8")).toBe("after\n");
  });

  test("a smaller keep than before prunes the older rotated files", async () => {
    const dir = tempDir();
    const path = join(dir, "c.log");
    for (let i = 0; i < 6; i++) writeFileSync(`${path}.${i}`, `old ${i}\n`);
    const sink = new RotatingFileSink({ dir, fileName: "c.log", rotateSize: 200, keep: 2, compress: false });
    writeLines(sink, 0, 4);
    await sink.flush();
    expect(readdirSync(dir).sort()).toEqual(["c.log", "c.log.0", "c.log.1"]);
    expect(readFileSync(`${path}.1`, "utf8")).toBe("old 0\n");
  });

  test("compressed rotation: name.0.gz .. decompress to the newest lines in order, nothing left pending", async () => {
    const dir = tempDir();
    const sink = new RotatingFileSink({ dir, fileName: "c.log", rotateSize: 2000, keep: 4, compress: true });
    writeLines(sink, 0, 300);
    await sink.flush();
    expect(readdirSync(dir).sort()).toEqual(["c.log", "c.log.0.gz", "c.log.1.gz", "c.log.2.gz", "c.log.3.gz"]);
    const kept = keptText(join(dir, "c.log"), 4, true);
    expect(kept.length).toBeGreaterThan(4 * 1900);
    expect(allLines(0, 300).endsWith(kept)).toBe(true);
  });

  test("a rotated file left uncompressed by a crash is compressed at the next start, before newer ones", async () => {
    const dir = tempDir();
    const path = join(dir, "c.log");
    writeFileSync(`${path}.pending-7`, "from the crashed run\n");
    const sink = new RotatingFileSink({ dir, fileName: "c.log", rotateSize: 100, keep: 3, compress: true });
    sink.write("a".repeat(80) + "\n");
    sink.write("b".repeat(80) + "\n");
    await sink.flush();
    expect(readdirSync(dir).sort()).toEqual(["c.log", "c.log.0.gz", "c.log.1.gz"]);
    expect(gunzipSync(readFileSync(`${path}.1.gz`)).toString()).toBe("from the crashed run\n");
    expect(gunzipSync(readFileSync(`${path}.0.gz`)).toString()).toBe("a".repeat(80) + "\n");
    expect(readFileSync(path, "utf8")).toBe("b".repeat(80) + "\n");
  });
});

describe("no line is lost when the process exits right after logging", () => {
  // A child process logs and calls process.exit() at once; every line must be there.
  async function runChild(sinkExpr: string, dir: string, lines: number) {
    const script = join(dir, "child.ts");
    writeFileSync(
      script,
      `import { createLogger, openSink } from ${JSON.stringify(join(ROOT, "src/log/logger.ts"))};
       const log = createLogger({ level: "info", sink: ${sinkExpr} });
       for (let i = 0; i < ${lines}; i++) log.info("event", { i });
       process.exit(3);`,
    );
    const child = Bun.spawn([process.execPath, script], { cwd: dir, stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, code] = await Promise.all([
      new Response(child.stdout).text(),
      new Response(child.stderr).text(),
      child.exited,
    ]);
    return { stdout, stderr, code };
  }

  const expectAll = (text: string, n: number) => {
    const lines = text.split("\n").filter(Boolean);
    expect(lines).toHaveLength(n);
    expect(lines[n - 1]).toEndWith(` INFO event i=${n - 1}`);
  };

  test("file sink", async () => {
    const dir = tempDir();
    const sink = `openSink({ logToStdout: false, logDir: "logs", logFileName: "c.log", logRotateSize: 1 << 30, logRotateKeep: 1, logRotateCompress: false })`;
    const { code, stderr } = await runChild(sink, dir, 5000);
    expect({ code, stderr }).toEqual({ code: 3, stderr: "" });
    expectAll(readFileSync(join(dir, "logs", "c.log"), "utf8"), 5000);
  });

  test("stdout sink (a pipe)", async () => {
    const dir = tempDir();
    const { code, stdout, stderr } = await runChild(`openSink({ logToStdout: true } as any)`, dir, 5000);
    expect({ code, stderr }).toEqual({ code: 3, stderr: "" });
    expectAll(stdout, 5000);
  });

  test("a closed stdout pipe (EPIPE) stops stdout logging but does not kill the process", async () => {
    const dir = tempDir();
    const script = join(dir, "epipe.ts");
    writeFileSync(
      script,
      `import { createLogger, openSink } from ${JSON.stringify(join(ROOT, "src/log/logger.ts"))};
       const log = createLogger({ level: "info", sink: openSink({ logToStdout: true } as any) });
       for (let i = 0; i < 20000; i++) log.info("event", { i });
       process.stderr.write("still alive\\n");
       process.exit(7);`,
    );
    const shell = Bun.spawn(["bash", "-c", `"$0" "$1" | head -n 1 >/dev/null; echo "status=\${PIPESTATUS[0]}"`, process.execPath, script], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const [out, err] = await Promise.all([new Response(shell.stdout).text(), new Response(shell.stderr).text(), shell.exited]);
    expect(out.trim()).toBe("status=7");
    expect(err).toContain("consensus: log output to stdout stopped:");
    expect(err).toContain("still alive");
  });
});
