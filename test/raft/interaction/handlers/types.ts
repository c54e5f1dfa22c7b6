import type { Directive } from "../datadriven.ts";
import type { InteractionEnv } from "../env.ts";

/** Runs one directive; what it writes to env.out is the directive's output. */
export type Handler = (env: InteractionEnv, d: Directive) => void;
