// The commands an interaction script may use, one handler per file.
import { addNodes } from "./add-nodes.ts";
import { campaign } from "./campaign.ts";
import { compact } from "./compact.ts";
import { deliverMsgs } from "./deliver-msgs.ts";
import { logLevel } from "./log-level.ts";
import { persist } from "./persist.ts";
import { processReady } from "./process-ready.ts";
import { proposeConfChange } from "./propose-conf-change.ts";
import { propose } from "./propose.ts";
import { raftLog } from "./raft-log.ts";
import { raftState } from "./raft-state.ts";
import { reportUnreachable } from "./report-unreachable.ts";
import { setRandomizedElectionTimeout } from "./set-randomized-election-timeout.ts";
import { stabilize } from "./stabilize.ts";
import { status } from "./status.ts";
import { tickElection } from "./tick-election.ts";
import { tickHeartbeat } from "./tick-heartbeat.ts";
import { tick } from "./tick.ts";
import { transferLeadership } from "./transfer-leadership.ts";
import type { Handler } from "./types.ts";

export const HANDLERS: Record<string, Handler> = {
  "add-nodes": addNodes,
  campaign,
  compact,
  "deliver-msgs": deliverMsgs,
  "log-level": logLevel,
  persist,
  "process-ready": processReady,
  propose,
  "propose-conf-change": proposeConfChange,
  "raft-log": raftLog,
  "raft-state": raftState,
  "report-unreachable": reportUnreachable,
  "set-randomized-election-timeout": setRandomizedElectionTimeout,
  stabilize,
  status,
  tick,
  "tick-election": tickElection,
  "tick-heartbeat": tickHeartbeat,
  "transfer-leadership": transferLeadership,
};
