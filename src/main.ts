// Entry point of the `consensus` binary (see src/cli/main.ts for commands and exit codes).
import { main } from "./cli/main.ts";

process.exit(await main(process.argv.slice(2), process.argv0));
