// Log file with size rotation, sloggers-compatible naming: the live file `name`, rotated files
// `name.0` (newest) … `name.<keep-1>`, or `name.0.gz` … when compressed.
//
// Rotation itself is a few synchronous renames. Compression of a rotated file (up to
// log_rotate_size bytes) runs in the background on zlib's thread pool so it never stalls the
// event loop: the file is parked as `name.pending-<n>`, gzipped, and only then moved into the ring.
// A pending file left by a crash is picked up at the next start.
import {
  closeSync,
  createReadStream,
  createWriteStream,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  unlinkSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { describeFsError } from "../config/errors.ts";
import { type Sink, warnStderr, writeAll } from "./sinks.ts";

export interface FileSinkOptions {
  dir: string;
  fileName: string;
  /** Rotate before the file would grow past this many bytes (a longer single line gets its own file). */
  rotateSize: number;
  /** Number of rotated files kept; 0 keeps none. */
  keep: number;
  compress: boolean;
}

export class RotatingFileSink implements Sink {
  readonly path: string;
  private fd = -1;
  private size = 0;
  private dropped = 0;
  private nextPending = 0;
  private jobs: Promise<void> = Promise.resolve();

  /** Creates the directory and opens (appends to) the live file; throws a readable Error if it cannot. */
  constructor(private readonly opts: FileSinkOptions) {
    this.path = join(opts.dir, opts.fileName);
    try {
      mkdirSync(dirname(this.path), { recursive: true });
      this.open();
    } catch (err) {
      throw new Error(`cannot open log file ${JSON.stringify(this.path)}: ${describeFsError(err)}`);
    }
    for (const pending of this.leftoverPending()) this.compress(pending);
  }

  write(line: string): void {
    const buf = Buffer.from(line);
    try {
      if (this.fd < 0) this.open();
      if (this.size > 0 && this.size + buf.length > this.opts.rotateSize) this.rotate();
      writeAll(this.fd, buf);
      this.size += buf.length;
      if (this.dropped > 0) {
        warnStderr(`log file ${this.path} is writable again; ${this.dropped} line(s) were lost`);
        this.dropped = 0;
      }
    } catch (err) {
      if (this.dropped++ === 0) {
        warnStderr(`cannot write log file ${this.path}: ${describeFsError(err)}; dropping lines until it works again`);
      }
    }
  }

  // A stop does not wait for this: a file still pending is compressed at the next start.
  async flush(): Promise<void> {
    await this.jobs;
  }

  private open(): void {
    this.fd = openSync(this.path, "a");
    this.size = fstatSync(this.fd).size;
  }

  private rotate(): void {
    closeSync(this.fd);
    this.fd = -1;
    try {
      if (this.opts.keep === 0) {
        unlinkSync(this.path);
      } else if (this.opts.compress) {
        const pending = `${this.path}.pending-${this.nextPending++}`;
        renameSync(this.path, pending);
        this.compress(pending);
      } else {
        this.shiftRing("");
        renameSync(this.path, `${this.path}.0`);
      }
    } catch (err) {
      warnStderr(`log rotation of ${this.path} failed: ${describeFsError(err)}; continuing in the same file`);
    }
    this.open();
  }

  /** Frees slot 0 of the ring: `.i` → `.i+1`, dropping what would fall beyond `keep`. */
  private shiftRing(ext: string): void {
    let n = 0;
    while (existsSync(`${this.path}.${n}${ext}`)) n++;
    for (let i = n - 1; i >= 0; i--) {
      const from = `${this.path}.${i}${ext}`;
      if (i + 1 >= this.opts.keep) unlinkSync(from);
      else renameSync(from, `${this.path}.${i + 1}${ext}`);
    }
  }

  // Jobs run one at a time in rotation order, so the ring stays ordered newest first.
  private compress(pending: string): void {
    this.jobs = this.jobs.then(async () => {
      const tmp = `${pending}.gz`;
      try {
        if (this.opts.keep === 0) {
          unlinkSync(pending);
          return;
        }
        await pipeline(createReadStream(pending), createGzip(), createWriteStream(tmp));
        this.shiftRing(".gz");
        renameSync(tmp, `${this.path}.0.gz`);
        unlinkSync(pending);
      } catch (err) {
        warnStderr(`compressing rotated log ${pending} failed: ${describeFsError(err)}; left uncompressed`);
      }
    });
  }

  private leftoverPending(): string[] {
    const prefix = `${basename(this.path)}.pending-`;
    const seqs = readdirSync(dirname(this.path))
      .filter((name) => name.startsWith(prefix) && /^\d+$/.test(name.slice(prefix.length)))
      .map((name) => Number(name.slice(prefix.length)))
      .sort((a, b) => a - b);
    this.nextPending = seqs.length > 0 ? seqs[seqs.length - 1] + 1 : 0;
    return seqs.map((n) => `${this.path}.pending-${n}`);
  }
}
