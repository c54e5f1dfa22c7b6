// propose <id> <data>: proposes one normal entry; a refused proposal prints the error.
import { positional } from "./args.ts";
import type { Handler } from "./types.ts";

export const propose: Handler = (env, d) => {
  const [id, data] = positional(d);
  if (id === undefined || data === undefined) throw new Error("propose: usage: propose <id> <data>");
  const n = env.node(BigInt(id));
  env.report(() => n.raw.propose(new Uint8Array(), new TextEncoder().encode(data)));
};
