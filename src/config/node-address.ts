// The node address file named by `node_addr`: 20 bytes as 40 hex digits. Unlike the Rust service
// we trim surrounding whitespace (a trailing newline from `echo` is the usual case) and accept an
// optional 0x/0X prefix; everything else is rejected with a message naming the key and the file.
import { readFileSync } from "node:fs";
import { ConfigError, describeFsError } from "./errors.ts";

export const ADDRESS_BYTES = 20;

/** Reads and decodes the address file; `where` prefixes messages, e.g. `config.toml: consensus_raft.node_addr`. */
export function readNodeAddress(path: string, where: string): Uint8Array {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`${where}: cannot read address file ${JSON.stringify(path)}: ${describeFsError(err)}`);
  }
  try {
    return parseAddressHex(text);
  } catch (err) {
    throw new ConfigError(`${where}: address file ${JSON.stringify(path)}: ${(err as Error).message}`);
  }
}

/** Decodes `[0x]<40 hex digits>` with optional surrounding whitespace; throws a readable Error. */
export function parseAddressHex(text: string): Uint8Array {
  const trimmed = text.trim();
  if (trimmed === "") throw new Error("is empty; expected 40 hex digits (20 bytes)");
  const hex = /^0x/i.test(trimmed) ? trimmed.slice(2) : trimmed;
  const bad = hex.search(/[^0-9a-fA-F]/);
  if (bad >= 0) {
    const ch = JSON.stringify(String.fromCodePoint(hex.codePointAt(bad)!));
    throw new Error(`expected 40 hex digits (20 bytes), found ${ch} at position ${bad + 1}`);
  }
  if (hex.length !== ADDRESS_BYTES * 2) {
    throw new Error(`expected 40 hex digits (20 bytes), got ${hex.length}`);
  }
  return Uint8Array.fromHex(hex);
}
