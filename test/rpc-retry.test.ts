import { describe, expect, test } from "bun:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { isRetryableError, type RetryPolicy, withRetry } from "../src/rpc/retry.ts";

const FAST: RetryPolicy = { minDelayMs: 1, maxDelayMs: 5, factor: 2, maxElapsedMs: 5000, maxAttempts: 10 };

/** An operation that fails with the given errors in turn, then succeeds. */
function flaky(errors: unknown[]) {
  const op = async (attempt: number) => {
    op.calls++;
    if (attempt <= errors.length) throw errors[attempt - 1];
    return "ok";
  };
  op.calls = 0;
  return op;
}

describe("retry classification", () => {
  test.each([
    Code.Unavailable,
    Code.Canceled, // a peer that dies mid-call surfaces as Canceled on Bun and Node
    Code.DeadlineExceeded,
    Code.ResourceExhausted,
    Code.Aborted,
    Code.Internal,
    Code.Unknown,
    Code.DataLoss,
  ])("code %p is retried", (code) => {
    expect(isRetryableError(new ConnectError("x", code))).toBe(true);
  });

  test.each([
    Code.InvalidArgument,
    Code.NotFound,
    Code.AlreadyExists,
    Code.PermissionDenied,
    Code.FailedPrecondition,
    Code.Unimplemented,
    Code.Unauthenticated,
    Code.OutOfRange,
  ])("code %p is not retried", (code) => {
    expect(isRetryableError(new ConnectError("x", code))).toBe(false);
  });

  test("errors that are not gRPC errors (bugs) are not retried", () => {
    expect(isRetryableError(new Error("bug"))).toBe(false);
  });
});

describe("withRetry", () => {
  test("retries transient failures until the call succeeds, reporting each retry", async () => {
    const op = flaky([new ConnectError("down", Code.Unavailable), new ConnectError("died", Code.Canceled)]);
    const retries: number[] = [];
    expect(await withRetry(op, { policy: FAST, onRetry: (_e, attempt) => retries.push(attempt) })).toBe("ok");
    expect(op.calls).toBe(3);
    expect(retries).toEqual([1, 2]);
  });

  test("gives up at once on a non-retryable error", async () => {
    const op = flaky([new ConnectError("bad", Code.InvalidArgument)]);
    await expect(withRetry(op, { policy: FAST })).rejects.toThrow("bad");
    expect(op.calls).toBe(1);
  });

  test("gives up after maxAttempts with the last error", async () => {
    const errors = Array.from({ length: 10 }, (_, i) => new ConnectError(`down ${i + 1}`, Code.Unavailable));
    const op = flaky(errors);
    await expect(withRetry(op, { policy: { ...FAST, maxAttempts: 4 } })).rejects.toThrow("down 4");
    expect(op.calls).toBe(4);
  });

  test("gives up when the time budget is spent", async () => {
    const op = async () => {
      throw new ConnectError("down", Code.Unavailable);
    };
    const t0 = performance.now();
    const policy = { minDelayMs: 20, maxDelayMs: 20, factor: 1, maxElapsedMs: 150, maxAttempts: Infinity };
    await expect(withRetry(op, { policy })).rejects.toThrow("down");
    const elapsed = performance.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(140);
    expect(elapsed).toBeLessThan(3000);
  });

  test("an abort stops the retries and rejects with the abort reason", async () => {
    const ac = new AbortController();
    let calls = 0;
    const op = async () => {
      if (++calls === 3) ac.abort(new Error("stopping"));
      throw new ConnectError("down", Code.Unavailable);
    };
    const policy = { ...FAST, maxAttempts: Infinity, maxElapsedMs: Infinity };
    await expect(withRetry(op, { policy, signal: ac.signal })).rejects.toThrow("stopping");
    expect(calls).toBe(3);
  });

  test("delays grow from minDelayMs by the factor and stay within the cap", async () => {
    const delays: number[] = [];
    const errors = Array.from({ length: 12 }, () => new ConnectError("down", Code.Unavailable));
    const policy = { minDelayMs: 2, maxDelayMs: 16, factor: 2, maxElapsedMs: Infinity, maxAttempts: 13 };
    await withRetry(flaky(errors), { policy, onRetry: (_e, _a, d) => delays.push(d) });
    expect(delays).toHaveLength(12);
    // Jitter multiplies by [1, 2): attempt n waits within [2 * 2^(n-1), 2 * 2^n], capped at 16.
    expect(delays.slice(0, 3).map((d, i) => d >= 2 << i && d <= 4 << i)).toEqual([true, true, true]);
    expect(delays.slice(3)).toEqual(Array(9).fill(16));
  });

  test("the first delay is randomized, so clients that fail together do not retry together", async () => {
    const firstDelays = new Set<number>();
    for (let i = 0; i < 20; i++) {
      const ac = new AbortController();
      const policy = { minDelayMs: 1000, maxDelayMs: 10_000, factor: 2, maxElapsedMs: Infinity, maxAttempts: 5 };
      const run = withRetry(flaky([new ConnectError("down", Code.Unavailable)]), {
        policy,
        signal: ac.signal,
        onRetry: (_e, _a, d) => {
          firstDelays.add(d);
          ac.abort(new Error("enough")); // only the drawn delay matters, not the wait
        },
      });
      await expect(run).rejects.toThrow("enough");
    }
    expect(Math.min(...firstDelays)).toBeGreaterThanOrEqual(1000);
    expect(Math.max(...firstDelays)).toBeLessThanOrEqual(2000);
    expect(firstDelays.size).toBeGreaterThan(1);
  });
});
