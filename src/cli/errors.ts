// Errors the CLI maps to exit codes: UsageError → 2, FatalError (already logged) and CheckFailed → 1.

/** Bad command line: unknown subcommand or flag, missing value, conflicting flags. */
export class UsageError extends Error {
  /** The command whose help explains the fix, e.g. `consensus run`. */
  constructor(
    message: string,
    readonly command = "consensus",
  ) {
    super(message);
    this.name = "UsageError";
  }
}

/** A runtime failure that has already been written to the service log. */
export class FatalError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FatalError";
  }
}

/** A check that ran and got a negative answer (e.g. `consensus health`); the message is the reason. */
export class CheckFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CheckFailed";
  }
}
