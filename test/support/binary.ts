// Shared by suites that exercise the compiled binary: `await ensureBinary()` returns the path of
// dist/consensus, building it first (with the exact `npm run build` flags) if it is missing or
// older than any file under src/, gen/ or package.json. Builds go to a temporary name and are
// renamed into place, and a lock file keeps concurrent test processes from building at once.
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dir, "../..");
export const BINARY = join(ROOT, "dist", "consensus");
const LOCK = join(ROOT, "dist", ".build.lock");
const WAIT_MS = 180_000;

let pending: Promise<string> | undefined;

export function ensureBinary(): Promise<string> {
  pending ??= build().catch((err) => {
    pending = undefined; // let a later suite retry after a fix
    throw err;
  });
  return pending;
}

async function build(): Promise<string> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    if (isFresh()) return BINARY;
    const lock = tryLock();
    if (lock !== undefined) {
      try {
        if (!isFresh()) await compile();
      } finally {
        closeSync(lock);
        rmSync(LOCK, { force: true });
      }
      return BINARY;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${LOCK} (held by another build)`);
    await Bun.sleep(100);
  }
}

function isFresh(): boolean {
  if (!existsSync(BINARY)) return false;
  const built = statSync(BINARY).mtimeMs;
  return newestSource() <= built;
}

function newestSource(): number {
  let newest = statSync(join(ROOT, "package.json")).mtimeMs;
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else newest = Math.max(newest, statSync(path).mtimeMs);
    }
  };
  walk(join(ROOT, "src"));
  walk(join(ROOT, "gen"));
  return newest;
}

// The lock holds the builder's pid; a lock whose process is gone is stale and removed. (Two
// waiters may then both build; harmless, since each build is renamed into place atomically.)
function tryLock(): number | undefined {
  mkdirSync(join(ROOT, "dist"), { recursive: true });
  try {
    const fd = openSync(LOCK, "wx");
    writeSync(fd, String(process.pid));
    return fd;
  } catch (err) {
    if ((err as { code?: string }).code !== "EEXIST") throw err;
    const holder = Number(readFileSync(LOCK, "utf8").trim());
    if (holder > 0 && !isAlive(holder)) rmSync(LOCK, { force: true });
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === "EPERM";
  }
}

async function compile(): Promise<void> {
  const script: string = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).scripts.build;
  const words = script.split(/\s+/);
  const out = words.indexOf("--outfile");
  if (words[0] !== "bun" || out < 0) throw new Error(`unexpected build script in package.json: ${script}`);
  const tmp = `${BINARY}.tmp-${process.pid}`;
  words[0] = process.execPath;
  words[out + 1] = tmp;
  const proc = Bun.spawn(words, { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) {
    rmSync(tmp, { force: true });
    throw new Error(`build failed (exit ${code}):\n${stdout}${stderr}`);
  }
  rmSync(`${tmp}.map`, { force: true });
  renameSync(tmp, BINARY);
}
