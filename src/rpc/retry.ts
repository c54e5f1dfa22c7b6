// Retry with exponential backoff and jitter for calls to the controller and the network service.
// Retries transport-level failures only: a non-zero StatusCode in a reply is an answer, not an error.
import { Code, ConnectError } from "@connectrpc/connect";
import pRetry from "p-retry";

export interface RetryPolicy {
  /** Delay before the first retry; later delays grow by `factor`, each randomized by x[1, 2). */
  readonly minDelayMs: number;
  /** Cap on a single delay. */
  readonly maxDelayMs: number;
  readonly factor: number;
  /** Give up when this much time has passed since the first attempt (Infinity: never). */
  readonly maxElapsedMs: number;
  /** Give up after this many attempts in all (Infinity: never). */
  readonly maxAttempts: number;
}

/** The seed's RetryClient schedule (100 ms x1.5 up to 5 s, 10 s or 10 attempts in all). */
export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  minDelayMs: 100,
  maxDelayMs: 5000,
  factor: 1.5,
  maxElapsedMs: 10_000,
  maxAttempts: 10,
};

// Codes that mean "the call did not get a real answer": the peer is down, restarting, overloaded or
// died mid-call (Bun and Node report that as Canceled, not Unavailable).
const RETRYABLE = new Set<Code>([
  Code.Unavailable,
  Code.Canceled,
  Code.DeadlineExceeded,
  Code.ResourceExhausted,
  Code.Aborted,
  Code.Internal,
  Code.Unknown,
  Code.DataLoss,
]);

export function isRetryableError(err: unknown): boolean {
  return err instanceof ConnectError && RETRYABLE.has(err.code);
}

export interface RetryOptions {
  readonly policy?: RetryPolicy;
  /** Stops retrying; the promise then rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Which failures to retry (default: isRetryableError). */
  readonly retryOn?: (err: unknown) => boolean;
  /** Called before each wait, e.g. to log. */
  readonly onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

/** Runs `op` until it succeeds, fails with a non-retryable error, or the policy gives up. */
export function withRetry<T>(op: (attempt: number) => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const policy = opts.policy ?? DEFAULT_RETRY_POLICY;
  const retryOn = opts.retryOn ?? isRetryableError;
  return pRetry(op, {
    retries: policy.maxAttempts - 1,
    minTimeout: policy.minDelayMs,
    maxTimeout: policy.maxDelayMs,
    factor: policy.factor,
    randomize: true,
    maxRetryTime: policy.maxElapsedMs,
    signal: opts.signal,
    shouldRetry: ({ error }) => retryOn(error),
    onFailedAttempt: ({ error, attemptNumber, retryDelay }) => {
      if (retryDelay > 0 && retryOn(error)) opts.onRetry?.(error, attemptNumber, retryDelay);
    },
  });
}
