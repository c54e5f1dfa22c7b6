// Admission control of the gRPC port. The port is unauthenticated, so every resource a caller can
// make us hold is bounded: connections, calls in flight, the bytes their requests hold, and the
// size of one message, which is checked from the 5-byte gRPC frame header before the body is read.
// Refusals are RESOURCE_EXHAUSTED at once, without reading the request.
import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ConsolaInstance } from "consola";
import type { LogLimiter } from "../peer/rate.ts";

/** Why a call was refused before its request was read (a label of consensus_grpc_refused_total). */
export type RefusalReason = "too_large" | "busy" | "byte_budget" | "connections";

export interface AdmissionLimits {
  /** Largest message accepted (`max_message_bytes`). */
  readonly maxBytes: number;
  /** Calls in flight over all connections. */
  readonly maxCalls: number;
  /** Request bytes held by calls in flight over all connections. */
  readonly maxInflight: number;
  readonly maxConnections: number;
}

/** What the server holds right now (for metrics). */
export interface GrpcServerLoad {
  readonly calls: number;
  readonly bytes: number;
  readonly connections: number;
}

/** One call in flight: the request bytes it holds, released once when it ends or is refused. */
export interface AdmittedCall {
  bytes: number;
  open: boolean;
}

export const FRAME_HEADER = 5;

export class Admission {
  readonly load = { calls: 0, bytes: 0, connections: 0 };
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private onSessionsGone: (() => void) | undefined;

  constructor(
    readonly limits: AdmissionLimits,
    private readonly refused: (reason: RefusalReason) => void,
    private readonly log: ConsolaInstance,
    private readonly warn: LogLimiter,
  ) {}

  /** Takes a new connection, or closes it at once when there are too many. */
  admitSession(s: http2.ServerHttp2Session): void {
    if (this.sessions.size >= this.limits.maxConnections) {
      this.refused("connections");
      this.warn.warn("too many grpc connections; closing a new one", { limit: this.limits.maxConnections });
      s.destroy();
      return;
    }
    this.sessions.add(s);
    this.load.connections = this.sessions.size;
    s.on("error", (e) => this.log.debug("grpc session error", { error: String(e) }));
    s.on("close", () => {
      this.sessions.delete(s);
      this.load.connections = this.sessions.size;
      if (this.sessions.size === 0) this.onSessionsGone?.();
    });
  }

  /** Closes every connection; resolves when they are gone or after `graceMs`, then cuts the rest. */
  async closeSessions(graceMs: number): Promise<void> {
    if (this.sessions.size === 0) return;
    const gone = new Promise<void>((r) => (this.onSessionsGone = r));
    for (const s of this.sessions) s.close();
    let timer: Timer | undefined;
    await Promise.race([gone, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    for (const s of this.sessions) s.destroy();
  }

  /** Admits one call (undefined: refused and answered already). Its share is released when it ends. */
  admitCall(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): AdmittedCall | undefined {
    if (this.load.calls >= this.limits.maxCalls) {
      this.refused("busy");
      trailersOnly(res, Code.ResourceExhausted, "server is busy: too many calls in flight, retry later");
      return undefined;
    }
    this.load.calls++;
    const call: AdmittedCall = { bytes: 0, open: true };
    res.once("close", () => this.release(call));
    res.once("finish", () => {
      this.release(call);
      // Answered before the request was read to its end (a refusal): reset the stream so the caller
      // stops sending (RFC 9113 §8.1 allows NO_ERROR here), instead of trickling the rest in.
      if (!req.readableEnded) res.stream.close(http2.constants.NGHTTP2_NO_ERROR);
    });
    return call;
  }

  /** Counts and caps the request bytes of one call as Connect reads them. */
  async *limitedBody(body: AsyncIterable<Uint8Array>, call: AdmittedCall): AsyncGenerator<Uint8Array> {
    const { maxBytes, maxInflight } = this.limits;
    const header = new Uint8Array(FRAME_HEADER);
    let seen = 0;
    for await (const chunk of body) {
      if (!call.open) return;
      if (seen < FRAME_HEADER) {
        const n = Math.min(FRAME_HEADER - seen, chunk.length);
        header.set(chunk.subarray(0, n), seen);
        if (seen + n === FRAME_HEADER) {
          const declared = new DataView(header.buffer).getUint32(1);
          if (declared > maxBytes) throw this.refuse(call, "too_large", declared);
        }
      }
      seen += chunk.length;
      // A unary request holds one message; anything beyond its frame is refused the same way.
      if (seen > maxBytes + FRAME_HEADER) throw this.refuse(call, "too_large", seen - FRAME_HEADER);
      if (this.load.bytes + chunk.length > maxInflight) throw this.refuse(call, "byte_budget", 0);
      this.load.bytes += chunk.length;
      call.bytes += chunk.length;
      yield chunk;
    }
  }

  private release(call: AdmittedCall): void {
    if (!call.open) return;
    call.open = false;
    this.load.calls--;
    this.load.bytes -= call.bytes;
  }

  /**
   * Refuses a call whose request is still arriving. Its share is released at once: the response
   * may only end once the caller stops sending (Bun keeps such a stream open), which it does when
   * the stream is reset after the answer, or by its own deadline.
   */
  private refuse(call: AdmittedCall, reason: "too_large" | "byte_budget", size: number): ConnectError {
    this.release(call);
    this.refused(reason);
    if (reason === "byte_budget") {
      return new ConnectError("server is busy: requests in flight hold too many bytes, retry later", Code.ResourceExhausted);
    }
    return new ConnectError(`message of ${size} bytes is larger than max_message_bytes (${this.limits.maxBytes})`, Code.ResourceExhausted);
  }
}

/** A gRPC error response in one HEADERS frame that ends the stream; the request is never read. */
export function trailersOnly(res: http2.Http2ServerResponse, code: Code, message: string): void {
  res.stream.respond(
    { ":status": 200, "content-type": "application/grpc", "grpc-status": String(code), "grpc-message": encodeURIComponent(message) },
    { endStream: true },
  );
}
