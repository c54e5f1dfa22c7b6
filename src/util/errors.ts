// What a caught value says, for one log field or one error line.

/** The message of an Error, or the value as text (anything can be thrown). */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
