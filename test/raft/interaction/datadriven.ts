// A small reader and writer for datadriven test files. A file is a sequence of directives:
//
//   # comments and blank lines between directives are kept as they are
//   command pos1 pos2 key=val key=(v1,v2)
//   optional input lines
//   ----
//   expected output, ended by a blank line
//
// An expected output that itself contains blank lines is written between two "----" lines:
//
//   command
//   ----
//   ----
//   output with
//
//   a blank line
//   ----
//   ----

export interface Arg {
  key: string;
  /** Empty for a bare word (`deliver-msgs 1 2`); one or more values for `key=v` or `key=(v1,v2)`. */
  vals: string[];
}

export interface Directive {
  /** 1-based line of the command, for error messages. */
  line: number;
  /** The command line as written (kept verbatim when the file is rewritten). */
  source: string;
  cmd: string;
  args: Arg[];
  /** Lines between the command and the separator. */
  input: string[];
  expected: string;
}

/** One piece of a file: verbatim text (comments, blank lines) or a directive. */
export type Chunk = { kind: "text"; text: string } | { kind: "directive"; d: Directive };

const SEP = "----";

export function parseArgs(line: string, where: string): { cmd: string; args: Arg[] } {
  const tokens: string[] = [];
  let i = 0;
  while (i < line.length) {
    if (line[i] === " " || line[i] === "\t") {
      i++;
      continue;
    }
    let j = i;
    let depth = 0;
    while (j < line.length && (depth > 0 || (line[j] !== " " && line[j] !== "\t"))) {
      if (line[j] === "(") depth++;
      else if (line[j] === ")") depth--;
      j++;
    }
    if (depth !== 0) throw new Error(`${where}: unbalanced parentheses in "${line}"`);
    tokens.push(line.slice(i, j));
    i = j;
  }
  if (tokens.length === 0) throw new Error(`${where}: empty command`);
  const [cmd, ...rest] = tokens;
  const args = rest.map((t): Arg => {
    const eq = t.indexOf("=");
    if (eq < 0) return { key: t, vals: [] };
    const key = t.slice(0, eq);
    let v = t.slice(eq + 1);
    if (v.startsWith("(") && v.endsWith(")")) {
      v = v.slice(1, -1);
      return { key, vals: v === "" ? [] : v.split(",").map((s) => s.trim()) };
    }
    return { key, vals: [v] };
  });
  return { cmd, args };
}

export function parseFile(text: string, name: string): Chunk[] {
  const lines = text.split("\n");
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  const chunks: Chunk[] = [];
  let i = 0;
  const pushText = (t: string) => {
    const last = chunks[chunks.length - 1];
    if (last?.kind === "text") last.text += t;
    else chunks.push({ kind: "text", text: t });
  };
  while (i < lines.length) {
    const l = lines[i];
    if (l.trim() === "" || l.startsWith("#")) {
      pushText(l + "\n");
      i++;
      continue;
    }
    const line = i + 1;
    const where = `${name}:${line}`;
    const { cmd, args } = parseArgs(l, where);
    i++;
    const input: string[] = [];
    while (i < lines.length && lines[i] !== SEP) {
      if (lines[i].trim() === "") throw new Error(`${where}: blank line before "${SEP}"`);
      input.push(lines[i]);
      i++;
    }
    if (i >= lines.length) throw new Error(`${where}: missing "${SEP}"`);
    i++; // the separator
    const out: string[] = [];
    if (lines[i] === SEP) {
      // Long form: everything up to "----\n----".
      i++;
      while (i < lines.length && !(lines[i] === SEP && lines[i + 1] === SEP)) out.push(lines[i++]);
      if (i >= lines.length) throw new Error(`${where}: unterminated "${SEP}" block`);
      i += 2;
    } else {
      while (i < lines.length && lines[i].trim() !== "") out.push(lines[i++]);
    }
    chunks.push({ kind: "directive", d: { line, source: l, cmd, args, input, expected: out.length > 0 ? out.join("\n") + "\n" : "" } });
  }
  return chunks;
}

/** One directive with the given output, in the short or long form as the output needs. */
export function formatDirective(d: Directive, output: string): string {
  let s = d.source + "\n";
  for (const l of d.input) s += l + "\n";
  s += SEP + "\n";
  const body = output.endsWith("\n") ? output : output + "\n";
  if (body.split("\n").slice(0, -1).some((l) => l.trim() === "")) {
    s += SEP + "\n" + body + SEP + "\n" + SEP + "\n";
  } else {
    s += body;
  }
  return s;
}
