import { errorMessage } from "../util/errors.ts";
// A configuration problem the operator must fix. The message is always one line that names the
// file and, where there is one, the key: `config.toml: consensus_raft.grpc_listen_port: ...`.
export class ConfigError extends Error {
  constructor(message: string) {
    super(message.replace(/\s*[\r\n]+\s*/g, " "));
    this.name = "ConfigError";
  }
}

/** Describes a TOML value for an error message: strings quoted, containers by kind. */
export function describeValue(value: unknown): string {
  if (typeof value === "string") {
    const quoted = JSON.stringify(value);
    return quoted.length > 60 ? `${quoted.slice(0, 57)}..."` : quoted;
  }
  if (Array.isArray(value)) return value.length === 0 ? "an empty array" : "an array";
  if (value !== null && typeof value === "object") return "a table";
  return String(value);
}

/** A short readable reason for a failed file-system call (`no such file`, not `ENOENT: ...`). */
export function describeFsError(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  switch (code) {
    case "ENOENT":
      return "no such file";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "is a directory, not a file";
    case "ENOTDIR":
      return "a parent of the path is not a directory";
    case "EEXIST":
      return "a parent of the path exists but is not a directory";
    case "ENOSPC":
      return "no space left on device";
    case "EROFS":
      return "read-only file system";
    default:
      return errorMessage(err);
  }
}
