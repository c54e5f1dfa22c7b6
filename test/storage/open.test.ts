// Bad data dirs and databases: each stops the start with one readable StorageOpenError line
// naming the file, and nothing on disk is changed by the failed attempt.
import { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { newEntry } from "../../src/raft/index.ts";
import { StorageOpenError } from "../../src/storage/errors.ts";
import { DB_FILE, SqliteStorage } from "../../src/storage/sqlite.ts";

const dirs: string[] = [];
const cleanups: (() => void)[] = [];

function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "storage-open-"));
  dirs.push(d);
  return d;
}

afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A data dir holding a closed database with a few hundred entries (several pages). */
function populated(): { dir: string; file: string } {
  const dir = tmpDir();
  const s = SqliteStorage.open(dir);
  for (let i = 1; i <= 300; i += 10) {
    const entries = Array.from({ length: 10 }, (_, k) => newEntry({ index: i + k, term: 1, data: new Uint8Array(200).fill(k) }));
    s.persist({ entries, hardState: { term: 1, vote: 1n, commit: i + 9 } });
  }
  s.close();
  return { dir, file: path.join(dir, DB_FILE) };
}

/** The StorageOpenError thrown by opening `dir`, checked to be a single line. */
function openError(dir: string): string {
  try {
    SqliteStorage.open(dir).close();
  } catch (e) {
    expect(e).toBeInstanceOf(StorageOpenError);
    const msg = (e as Error).message;
    expect(msg).not.toContain("\n");
    return msg;
  }
  throw new Error(`opening ${dir} succeeded`);
}

/** Makes a path read-only for this process, also as root (where mode bits do not apply). */
function readOnly(p: string): void {
  if (process.getuid?.() === 0) {
    expect(spawnSync("chattr", ["+i", p]).status).toBe(0);
    cleanups.push(() => spawnSync("chattr", ["-i", p]));
  } else {
    const mode = fs.statSync(p).mode;
    fs.chmodSync(p, fs.statSync(p).isDirectory() ? 0o555 : 0o444);
    cleanups.push(() => fs.chmodSync(p, mode));
  }
}

function rawDb(file: string, f: (db: Database) => void): void {
  const db = new Database(file);
  try {
    f(db);
  } finally {
    db.close(true);
  }
}

describe("a second process on the same data dir", () => {
  test("fails clearly while the first holds it, and succeeds once it is gone", async () => {
    const dir = tmpDir();
    const child = spawn(process.execPath, [path.join(import.meta.dir, "../fixtures/storage/hold.ts"), dir], { stdio: ["ignore", "pipe", "inherit"] });
    cleanups.push(() => child.kill("SIGKILL"));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => d.toString().includes("ready") && resolve());
      child.on("exit", (code) => reject(new Error(`holder exited with ${code}`)));
    });
    expect(openError(dir)).toBe(`raft data dir ${dir} is in use by another consensus process (${path.join(dir, DB_FILE)} is locked)`);
    const exited = new Promise((r) => child.on("exit", r));
    child.kill("SIGKILL");
    await exited;
    const s = SqliteStorage.open(dir);
    expect(s.lastIndex()).toBe(0);
    s.close();
  });

  test("a second open in the same process is refused too", () => {
    const dir = tmpDir();
    const s = SqliteStorage.open(dir);
    cleanups.push(() => s.close());
    expect(openError(dir)).toContain("is in use by another consensus process");
  });
});

describe("corruption", () => {
  test("a damaged page is reported as corrupt and the file is left untouched", () => {
    const { dir, file } = populated();
    const fd = fs.openSync(file, "r+");
    fs.writeSync(fd, new Uint8Array(64).fill(0xff), 0, 64, 4096 + 8); // inside page 2's b-tree header and cell pointers
    fs.closeSync(fd);
    const before = fs.readFileSync(file);
    expect(openError(dir)).toMatch(new RegExp(`^raft database ${file} is corrupt \\(.+\\); restore it from a backup, or move the raft data dir away`));
    expect(fs.readFileSync(file).equals(before)).toBe(true);
  });

  test("a file that is not SQLite at all is reported as corrupt", () => {
    const dir = tmpDir();
    const file = path.join(dir, DB_FILE);
    fs.writeFileSync(file, crypto.getRandomValues(new Uint8Array(8192)));
    const before = fs.readFileSync(file);
    expect(openError(dir)).toMatch(/is corrupt \(file is not a database\)/);
    expect(fs.readFileSync(file).equals(before)).toBe(true);
  });

  test("state that breaks the storage's invariants is reported as inconsistent", () => {
    const { dir, file } = populated();
    rawDb(file, (db) => db.run("UPDATE raft_state SET applied_index = 999"));
    expect(openError(dir)).toBe(
      `raft database ${file} is inconsistent (applied index 999 is beyond the last entry 300); ` +
        "restore it from a backup, or move the raft data dir away to resync this node",
    );
  });

  test("an undecodable hard state is reported as inconsistent", () => {
    const { dir, file } = populated();
    rawDb(file, (db) => db.run("UPDATE raft_state SET hard_state = x'ffffffff'"));
    expect(openError(dir)).toMatch(/is inconsistent \(hard_state: cannot decode hard state/);
  });

  test("a log batch whose bytes do not match its index range is reported as inconsistent", () => {
    const { dir, file } = populated();
    rawDb(file, (db) => db.run("UPDATE log SET last_index = last_index + 1 WHERE first_index = 291"));
    expect(openError(dir)).toMatch(/is inconsistent \(log batch 291\.\.301: entry 301 is cut short\)/);
  });
});

describe("versions and foreign files", () => {
  test("a database written by a newer schema version is refused", () => {
    const { dir, file } = populated();
    rawDb(file, (db) => db.run("PRAGMA user_version = 2"));
    expect(openError(dir)).toBe(
      `raft database ${file} has schema version 2, newer than version 1 of this consensus; run the newer consensus binary that wrote it`,
    );
  });

  test("a SQLite file of some other application is refused, not extended", () => {
    const dir = tmpDir();
    const file = path.join(dir, DB_FILE);
    rawDb(file, (db) => db.run("CREATE TABLE notes (x)"));
    expect(openError(dir)).toBe(`${file} is not a consensus raft database (application_id 0); move it away`);
    rawDb(file, (db) => expect(db.query("SELECT count(*) AS n FROM sqlite_schema").get()).toEqual({ n: 1 }));
  });
});

describe("permissions", () => {
  test("a read-only database file", () => {
    const { dir, file } = populated();
    readOnly(file);
    expect(openError(dir)).toBe(`raft database ${file} is read-only`);
  });

  test("a read-only data dir", () => {
    const { dir } = populated();
    readOnly(dir);
    expect(openError(dir)).toBe(`raft data dir ${dir} is not writable`);
  });

  test("a data dir path that is a regular file", () => {
    const dir = path.join(tmpDir(), "raft-data-dir");
    fs.writeFileSync(dir, "x");
    expect(openError(dir)).toMatch(new RegExp(`^cannot create raft data dir ${dir}: `));
  });
});
