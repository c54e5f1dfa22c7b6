// process-ready <id>...: each node handles one Ready (persist, send, apply, advance). With several
// nodes each one's output gets a "> id handling Ready" header.
import { ids } from "./args.ts";
import type { Handler } from "./types.ts";

export const processReady: Handler = (env, d) => {
  const all = ids(d);
  for (const id of all) {
    const n = env.node(id);
    if (all.length === 1) env.processReady(n);
    else {
      env.out.write(`> ${id} handling Ready`);
      env.out.indented(() => env.processReady(n));
    }
  }
};
