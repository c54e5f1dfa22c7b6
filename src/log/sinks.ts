// Where formatted log lines go. Writes are synchronous (fs.writeSync) so that a line logged right
// before process.exit() is never lost; a failing destination never throws into the caller.
import { writeSync } from "node:fs";

export interface Sink {
  write(line: string): void;
  /** Resolves when background work (compression of rotated files) is done. */
  flush(): Promise<void>;
}

const pause = new Int32Array(new SharedArrayBuffer(4));

/** Writes all of `buf`, waiting briefly on EAGAIN (a non-blocking pipe that is full). */
export function writeAll(fd: number, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(fd, buf, off, buf.length - off);
    } catch (err) {
      if ((err as { code?: string }).code !== "EAGAIN") throw err;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}

/** Best-effort one-line notice on stderr about the logging itself; never throws. */
export function warnStderr(message: string): void {
  try {
    writeSync(2, `consensus: ${message}\n`);
  } catch {
    // stderr is gone too; nothing left to tell.
  }
}

/**
 * Standard output. The Rust service's `--stdout` actually wrote to stderr; we write to stdout as
 * the flag says. A closed pipe (EPIPE, e.g. `| head`) disables the sink instead of killing us.
 */
export class StdoutSink implements Sink {
  private broken = false;

  constructor(private readonly fd = 1) {}

  write(line: string): void {
    if (this.broken) return;
    try {
      writeAll(this.fd, Buffer.from(line));
    } catch (err) {
      this.broken = true;
      warnStderr(`log output to stdout stopped: ${(err as Error).message}`);
    }
  }

  async flush(): Promise<void> {}
}
