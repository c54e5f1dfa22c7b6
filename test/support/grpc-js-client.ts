// A real gRPC client that is not ours (@grpc/grpc-js + @grpc/proto-loader over proto/*.proto), to
// check the server against a third-party implementation of the wire protocol.
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const PROTO_DIR = path.join(import.meta.dir, "../../proto");

const definition = protoLoader.loadSync(["consensus.proto", "network.proto", "health_check.proto"], {
  includeDirs: [PROTO_DIR],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
});
// Service constructors are created at run time from the .proto files, so they have no static types.
const pkg = grpc.loadPackageDefinition(definition) as any;

export interface GrpcJsResult<T> {
  readonly error: grpc.ServiceError | null;
  readonly value: T | undefined;
}

type UnaryFn = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v: unknown) => void) => void;

export class GrpcJsClient {
  readonly consensus: grpc.Client;
  readonly handler: grpc.Client;
  readonly health: grpc.Client;
  readonly raw: grpc.Client;

  constructor(port: number, host = "127.0.0.1") {
    const target = `${host}:${port}`;
    const creds = grpc.credentials.createInsecure();
    this.consensus = new pkg.consensus.ConsensusService(target, creds);
    this.handler = new pkg.network.NetworkMsgHandlerService(target, creds);
    this.health = new pkg.grpc.health.v1.Health(target, creds);
    this.raw = new grpc.Client(target, creds);
  }

  /** Calls `method` (as named in the proto) on `client`, with client-name metadata and a deadline. */
  call<T>(client: grpc.Client, method: string, req: unknown, clientName = "controller"): Promise<GrpcJsResult<T>> {
    const md = new grpc.Metadata();
    md.set("client-name", clientName);
    const fn = (client as unknown as Record<string, UnaryFn>)[method]!.bind(client);
    return new Promise((resolve) =>
      fn(req, md, { deadline: Date.now() + 5000 }, (error, value) => resolve({ error, value: value as T })),
    );
  }

  /** Calls an arbitrary path with raw request bytes (empty by default). */
  callPath(pathName: string, body: Buffer = Buffer.alloc(0)): Promise<GrpcJsResult<Buffer>> {
    return new Promise((resolve) =>
      this.raw.makeUnaryRequest(
        pathName,
        (b: Buffer) => b,
        (b: Buffer) => b,
        body,
        new grpc.Metadata(),
        { deadline: Date.now() + 5000 },
        (error, value) => resolve({ error, value }),
      ),
    );
  }

  close(): void {
    for (const c of [this.consensus, this.handler, this.health, this.raw]) c.close();
  }
}
