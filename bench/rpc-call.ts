// The unit a block's critical path is made of: one loopback gRPC unary call between two Bun
// processes, with the Connect client (what the node uses) and with a bare node:http2 request (the
// floor of the transport), against our gRPC server (admission control included).
//
//   bun bench/rpc-call.ts [--calls 3000]
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import * as http2 from "node:http2";
import { parseArgs } from "node:util";
import { StatusCodeSchema } from "../gen/common_pb.ts";
import { NetworkMsgHandlerService, NetworkMsgSchema } from "../gen/network_pb.ts";
import { freePorts } from "../src/devchain/grpc.ts";

const { values: args } = parseArgs({ options: { calls: { type: "string", default: "3000" }, serve: { type: "string" } } });

if (args.serve !== undefined) {
  // The server process: our gRPC server with do-nothing handlers; prints its CPU time on SIGTERM.
  const { createGrpcServer } = await import("../src/rpc/server.ts");
  const { createConsola } = await import("consola");
  const server = createGrpcServer({ port: Number(args.serve), host: "127.0.0.1", log: createConsola({ level: 0 }), handlers: { reconfigure() {}, networkMsg() {} } });
  await server.start();
  process.stdout.write("ready\n");
  process.on("SIGTERM", () => {
    const u = process.cpuUsage();
    process.stdout.write(`${(u.user + u.system) / 1000}\n`);
    process.exit(0);
  });
  await new Promise(() => {});
}

const N = Number(args.calls);
const [port] = await freePorts(1);
const server = Bun.spawn(["bun", import.meta.path, "--serve", String(port)], { stdout: "pipe", stderr: "inherit" });
const out = server.stdout.getReader();
await out.read(); // "ready"

const probe = create(NetworkMsgSchema, { module: "consensus", type: "probe", origin: 1n, msg: new Uint8Array([0, 0, 0, 0, 0, 0, 0, 9]) });
const url = `http://127.0.0.1:${port}`;
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.floor(q * (xs.length - 1))];

async function measure(name: string, call: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < 300; i++) await call(); // warm-up
  const u0 = process.cpuUsage();
  const t0 = performance.now();
  const xs: number[] = [];
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    await call();
    xs.push(performance.now() - t);
  }
  const seconds = (performance.now() - t0) / 1000;
  const u = process.cpuUsage(u0);
  console.log(`${name}: p50 ${quantile(xs, 0.5).toFixed(3)} ms, p99 ${quantile(xs, 0.99).toFixed(3)} ms, ${(N / seconds).toFixed(0)} calls/s, client CPU ${((u.user + u.system) / 1000 / N).toFixed(3)} ms per call`);
}

const connect = createClient(NetworkMsgHandlerService, createGrpcTransport({ baseUrl: url, sessionManager: new Http2SessionManager(url) }));
await measure("Connect client → our server", () => connect.processNetworkMsg(probe));

const session = http2.connect(url);
const body = toBinary(NetworkMsgSchema, probe);
const frame = Buffer.alloc(5 + body.length);
frame.writeUInt32BE(body.length, 1);
frame.set(body, 5);
await measure("bare node:http2 request → our server", () =>
  new Promise<void>((resolve, reject) => {
    const st = session.request({ ":method": "POST", ":path": "/network.NetworkMsgHandlerService/ProcessNetworkMsg", "content-type": "application/grpc", te: "trailers" });
    const chunks: Buffer[] = [];
    st.on("data", (c: Buffer) => chunks.push(c));
    st.on("end", () => {
      fromBinary(StatusCodeSchema, Buffer.concat(chunks).subarray(5));
      resolve();
    });
    st.on("error", reject);
    st.end(frame);
  }),
);
session.close();

server.kill("SIGTERM");
const cpu = Number(new TextDecoder().decode((await out.read()).value ?? new Uint8Array()).trim());
console.log(`server CPU: ${(cpu / (2 * (N + 300))).toFixed(3)} ms per call (both clients, warm-ups and start-up included)`);
