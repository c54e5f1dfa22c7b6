// Crash consistency: a child writes Readies, applies, compactions and snapshots in a loop and is
// killed with SIGKILL at random moments (also during start-up and recovery). After every kill the
// database must open, pass integrity_check, and hold exactly the acknowledged writes (plus at
// most the one that committed just before its acknowledgement could be written).
import { Database } from "bun:sqlite";
import { afterAll, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { DB_FILE, SqliteStorage } from "../../src/storage/sqlite.ts";
import { Model, fingerprint, nextOp, rng, runOp } from "../fixtures/storage/workload.ts";

const KILLS = 50;
const WRITER = path.join(import.meta.dir, "../fixtures/storage/crash-writer.ts");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "storage-crash-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function until(cond: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(1);
  }
}

/** Runs the writer with `seed` and kills it at a random moment; returns how many writes it acknowledged. */
async function runAndKill(seed: number, early: boolean): Promise<number> {
  const child = Bun.spawn([process.execPath, WRITER, dir, String(seed)], { stdout: "pipe", stderr: "pipe" });
  let acks = 0;
  const reading = (async () => {
    for await (const chunk of child.stdout) acks += chunk.length;
  })();
  if (early) {
    // Anywhere from process start through opening and WAL recovery to the first writes.
    await Bun.sleep(Math.random() * 150);
  } else {
    await until(() => acks > 0 || child.exitCode !== null, "the first acknowledged write");
    await Bun.sleep(Math.random() * 30);
  }
  child.kill("SIGKILL");
  await child.exited;
  await reading;
  if (child.signalCode !== "SIGKILL") {
    throw new Error(`writer ended by itself (${child.exitCode}): ${await new Response(child.stderr).text()}`);
  }
  return acks;
}

test(`survives ${KILLS} kill -9 at random moments with every acknowledged write intact`, async () => {
  const model = new Model();
  let killedMidStream = 0;
  let unackedButDurable = 0;
  for (let run = 0; run < KILLS; run++) {
    const seed = (Math.random() * 2 ** 32) >>> 0;
    const acked = await runAndKill(seed, run % 3 === 0);
    if (acked > 0) killedMidStream++;

    const storage = SqliteStorage.open(dir);
    const recovered = fingerprint(storage);
    storage.close();
    const db = new Database(path.join(dir, DB_FILE));
    expect(db.query("PRAGMA integrity_check").values()).toEqual([["ok"]]);
    db.close(true);

    // Replay the run's writes on the model until it reaches the recovered state. Every write
    // yields a state never seen before, so the match pins down how many writes were durable.
    const r = rng(seed);
    let durable = 0;
    while (fingerprint(model) !== recovered) {
      if (durable > acked) {
        throw new Error(`run ${run} (seed ${seed}): ${acked} writes acknowledged, but the recovered state matches none of the first ${durable}`);
      }
      runOp(model, nextOp(r, model, { big: true }));
      durable++;
    }
    expect(durable).toBeGreaterThanOrEqual(acked);
    if (durable > acked) unackedButDurable++;
  }
  // The test is only meaningful if most kills interrupted a stream of writes.
  expect(killedMidStream).toBeGreaterThanOrEqual(KILLS / 2);
  console.log(`kill -9: ${KILLS} kills, ${killedMidStream} mid-stream, ${unackedButDurable} with the last write durable but unacknowledged, final log ${model.firstIndex()}..${model.lastIndex()}`);
}, 180_000);
