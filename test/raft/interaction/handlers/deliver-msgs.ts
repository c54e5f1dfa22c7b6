// deliver-msgs <id>... [drop=(ids)] [type=MsgX]: steps the queued messages to each listed node
// into it, in sending order, printing each; messages to the drop nodes are lost instead. With
// type= only messages of that type move; the rest stay queued.
import { MessageType } from "../../../../src/raft/types.ts";
import { ids, opt, optIds } from "./args.ts";
import type { Handler } from "./types.ts";

export const deliverMsgs: Handler = (env, d) => {
  const typeName = opt(d, "type")?.vals[0];
  let type: number | undefined;
  if (typeName !== undefined) {
    type = MessageType[typeName as keyof typeof MessageType];
    if (type === undefined) throw new Error(`deliver-msgs: unknown message type ${typeName}`);
  }
  let n = 0;
  for (const id of ids(d)) n += env.deliver(id, false, type);
  for (const id of optIds(d, "drop")) n += env.deliver(id, true, type);
  if (n === 0) env.out.write("no messages");
};
