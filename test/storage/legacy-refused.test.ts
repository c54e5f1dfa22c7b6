// A first start on the Rust service's data dir whose files cannot be imported is refused with one
// line, and leaves the data dir exactly as it found it: no raft.sqlite (nor -wal, -shm), the Rust
// files untouched. Once the operator fixes the file, the next start imports it.
import { afterEach, describe, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { StorageOpenError } from "../../src/storage/errors.ts";
import { SqliteStorage } from "../../src/storage/sqlite.ts";
import { ensureBinary } from "../support/binary.ts";
import { freePort } from "../support/free-port.ts";
import { waitUntil } from "../support/wait-until.ts";
import { ENTRY_NEXT_FILE, SNAPSHOT_FILE, legacyDir, removeLegacyDirs } from "../fixtures/storage/legacy-files.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
  removeLegacyDirs();
});

function tmpDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Every file of `dir` with its bytes (hex), by name. */
function contents(dir: string): Record<string, string> {
  return Object.fromEntries(fs.readdirSync(dir).sort().map((f) => [f, fs.readFileSync(path.join(dir, f)).toString("hex")]));
}

function openError(dir: string): string {
  try {
    SqliteStorage.open(dir).close();
  } catch (e) {
    expect(e).toBeInstanceOf(StorageOpenError);
    return (e as Error).message;
  }
  throw new Error(`opening ${dir} succeeded`);
}

const TORN_SNAPSHOT = SNAPSHOT_FILE.subarray(0, 30);

describe("a refused import creates nothing in the data dir", () => {
  const cases: [string, Record<string, Uint8Array | string>, RegExp][] = [
    ["a torn raft-snapshot", { "raft-snapshot": TORN_SNAPSHOT, "raft-entry": ENTRY_NEXT_FILE, abort_height: "12" }, /raft-snapshot: premature EOF/],
    ["a raft-snapshot whose data is not a ConsensusConfiguration", { "raft-snapshot": Buffer.from("050a03ffffff", "hex") }, /its data is not a ConsensusConfiguration/],
    ["a torn raft-entry", { "raft-snapshot": SNAPSHOT_FILE, "raft-entry": ENTRY_NEXT_FILE.subarray(0, 9) }, /raft-entry: premature EOF/],
    ["an abort_height that is not a number", { "raft-snapshot": SNAPSHOT_FILE, abort_height: "12a" }, /abort_height: "12a" is not a decimal u64/],
  ];
  for (const [name, files, why] of cases) {
    test(name, () => {
      const dir = legacyDir(files);
      const before = contents(dir);
      expect(openError(dir)).toMatch(why);
      expect(contents(dir)).toEqual(before);
    });
  }

  test("after the operator fixes the file, the next start imports everything", () => {
    const dir = legacyDir({ "raft-snapshot": TORN_SNAPSHOT, "raft-entry": ENTRY_NEXT_FILE, abort_height: "12" });
    openError(dir);
    fs.writeFileSync(path.join(dir, "raft-snapshot"), SNAPSHOT_FILE);
    const s = SqliteStorage.open(dir);
    expect([s.appliedIndex(), s.lastIndex(), s.abortHeight()]).toEqual([6, 7, 12n]);
    s.close();
    expect(fs.readdirSync(dir).sort()).toEqual(["abort_height.imported", "raft-entry.imported", "raft-snapshot.imported", "raft.sqlite"]);
  });
});

describe("the compiled binary on a Rust data dir with a torn raft-snapshot", () => {
  test("exits 1 with one line and leaves the dir as it was; once fixed, it imports and runs", async () => {
    const bin = await ensureBinary();
    const work = tmpDir("legacy-refused-bin-");
    const data = path.join(work, "raft-data-dir");
    fs.mkdirSync(data);
    fs.writeFileSync(path.join(data, "raft-snapshot"), TORN_SNAPSHOT);
    fs.writeFileSync(path.join(data, "raft-entry"), ENTRY_NEXT_FILE);
    fs.writeFileSync(path.join(data, "abort_height"), "12");
    fs.writeFileSync(path.join(work, "node_address"), "f805cf7df8dffc4fd9c98791d72d00c9587dc1d9");
    const ports = [await freePort(), await freePort(), await freePort(), await freePort()];
    fs.writeFileSync(
      path.join(work, "config.toml"),
      `[consensus_raft]\nnode_addr = "node_address"\ngrpc_listen_port = ${ports[0]}\nmetrics_port = ${ports[1]}\n` +
        `network_port = ${ports[2]}\ncontroller_port = ${ports[3]}\n`,
    );
    const before = contents(data);

    const refused = Bun.spawnSync([bin, "run", "--stdout"], { cwd: work, stdin: "ignore" });
    expect(refused.exitCode).toBe(1);
    const stderr = refused.stderr.toString();
    expect(stderr).toBe(
      `consensus: fatal: service failed to start: cannot import legacy raft-data-dir/raft-snapshot: premature EOF; nothing was imported (fix the file or move it away)\n`,
    );
    expect(contents(data)).toEqual(before);

    fs.writeFileSync(path.join(data, "raft-snapshot"), SNAPSHOT_FILE);
    const proc = Bun.spawn([bin, "run", "--stdout"], { cwd: work, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    cleanups.push(() => proc.kill("SIGKILL"));
    let out = "";
    void (async () => {
      for await (const chunk of proc.stdout) out += Buffer.from(chunk).toString();
    })();
    await waitUntil(() => out.includes("raft storage opened"), "the storage to open", 20_000, 20);
    expect(out).toMatch(/INFO \[storage\] imported the Rust service's raft state .*snapshot_index=6 .*entry="index 7 term 6" abort_height=12/);
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    expect(fs.readdirSync(data).sort()).toEqual(["abort_height.imported", "raft-entry.imported", "raft-snapshot.imported", "raft.sqlite"]);
  }, 60_000);
});
