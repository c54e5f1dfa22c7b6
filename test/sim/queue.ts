// A binary min-heap of timed events. Ties on time break by insertion order, which keeps the run
// deterministic whatever the heap's internal layout.

export interface Timed {
  time: number;
  seq: number;
}

export class EventQueue<T extends Timed> {
  private heap: T[] = [];
  private nextSeq = 0;

  get size(): number {
    return this.heap.length;
  }

  push(ev: T): void {
    ev.seq = this.nextSeq++;
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  pop(): T | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l], h[m])) m = l;
        if (r < h.length && before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }

  peekTime(): number | undefined {
    return this.heap[0]?.time;
  }

  /** The next event, left in the queue. */
  peek(): T | undefined {
    return this.heap[0];
  }
}

function before(a: Timed, b: Timed): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}
