// The sliding window of MsgAppend messages in flight to one follower, bounded by count and bytes.
// Each slot records the last index of a message; an ack frees every slot up to the acked index.

export class Inflights {
  private start = 0;
  private _count = 0;
  private _bytes = 0;
  private readonly idx: number[];
  private readonly size: number[];

  constructor(
    readonly cap: number,
    /** 0 = no byte limit. */
    readonly maxBytes = 0,
  ) {
    this.idx = new Array(cap).fill(0);
    this.size = new Array(cap).fill(0);
  }

  get count(): number {
    return this._count;
  }

  get bytes(): number {
    return this._bytes;
  }

  full(): boolean {
    return this._count === this.cap || (this.maxBytes > 0 && this._bytes >= this.maxBytes);
  }

  add(index: number, bytes = 0): void {
    if (this._count === this.cap) throw new Error("cannot add into a full inflights");
    let next = this.start + this._count;
    if (next >= this.cap) next -= this.cap;
    this.idx[next] = index;
    this.size[next] = bytes;
    this._count++;
    this._bytes += bytes;
  }

  /** Frees every inflight message whose last index is <= `to`. */
  freeTo(to: number): void {
    if (this._count === 0 || to < this.idx[this.start]) return;
    let i = 0;
    let pos = this.start;
    let freedBytes = 0;
    while (i < this._count) {
      if (to < this.idx[pos]) break;
      freedBytes += this.size[pos];
      i++;
      pos++;
      if (pos >= this.cap) pos -= this.cap;
    }
    this._count -= i;
    this._bytes -= freedBytes;
    this.start = this._count === 0 ? 0 : pos;
  }

  freeFirstOne(): void {
    if (this._count > 0) this.freeTo(this.idx[this.start]);
  }

  reset(): void {
    this._count = 0;
    this._bytes = 0;
    this.start = 0;
  }
}
