// Name and version as the Rust service reports them (`consensus_raft 6.7.4`). The version is read
// from package.json at build time, so printing it loads nothing else.
import pkg from "../../package.json" with { type: "json" };

export const SERVICE_NAME = "consensus_raft";
export const VERSION: string = pkg.version;
