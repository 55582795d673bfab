/**
 * The `moe-placer` command line: a thin shell over the library API (api.ts). `bin/moe-placer.js`
 * calls `main(argv)` and exits with the code it returns:
 * 0 success, 1 solver failure or unexpected error, 2 invalid input, 130 interrupted (SIGINT).
 *
 * Commands: plan, evaluate, export, generate, presets, demo, replay, help; `--version`; each command is a
 * file of cli/ with its flag spec and its runner, sharing cli/common.ts. Flags are parsed
 * by cli/args.ts; results go to stdout (a readable summary, or JSON with `--json`); progress goes
 * to stderr when it is a terminal (cli/progress.ts); errors are one line each on stderr, prefixed
 * `moe-placer: `, without a stack trace unless MOE_PLACER_DEBUG=1. Output files are written
 * atomically and only after success.
 */
import { toolVersion } from './api.js';
import { closest, commandHelp, parseFlags, type CommandSpec } from './cli/args.js';
import type { Ctx, Runner } from './cli/common.js';
import { Progress } from './cli/progress.js';
import * as compareCmd from './cli/compare.js';
import * as demo from './cli/demo.js';
import * as evaluate from './cli/evaluate.js';
import * as exportCmd from './cli/export.js';
import * as generate from './cli/generate.js';
import * as plan from './cli/plan.js';
import * as presets from './cli/presets.js';
import * as reportCmd from './cli/report.js';
import * as replayCmd from './cli/replay.js';
import { InputError, MoePlacerError } from './errors.js';

const COMMANDS: { spec: CommandSpec; run: Runner }[] = [plan, evaluate, exportCmd, generate, presets, demo, replayCmd, compareCmd, reportCmd];
const SPECS: Record<string, CommandSpec> = Object.fromEntries(COMMANDS.map((c) => [c.spec.name, c.spec]));
const RUNNERS: Record<string, Runner> = Object.fromEntries(COMMANDS.map((c) => [c.spec.name, c.run]));

const HELP = `moe-placer ${'{version}'}: place Mixture-of-Experts experts on GPU clusters (balanced load, less all-to-all traffic).

usage: moe-placer <command> [flags]

commands:
${Object.values(SPECS)
  .map((s) => `  ${s.name.padEnd(9)} ${s.summary}`)
  .join('\n')}
  help      help [command]: this text, or a command's flags

  --version print the version

Models and clusters are preset names (moe-placer presets) or JSON files; workloads are files or
folders in any supported format, detected from their content. Exit codes: 0 ok, 1 solver failure,
2 invalid input, 130 interrupted.
`;
// ---------------------------------------------------------------------------------------------
// main

function helpText(): string {
  return HELP.replace('{version}', toolVersion());
}

/** One line per problem on stderr; the exit code of the error. */
function reportError(err: unknown): number {
  const debug = process.env.MOE_PLACER_DEBUG === '1';
  const write = (s: string): void => void process.stderr.write(s);
  if (err instanceof InputError) {
    for (const p of err.problems) write(`moe-placer: ${p}\n`);
    if (debug && err.stack) write(`${err.stack}\n`);
    return 2;
  }
  if (err instanceof MoePlacerError) {
    write(`moe-placer: error: ${err.message.replace(/\n/g, '; ')}\n`);
    if (debug && err.stack) write(`${err.stack}\n`);
    return err.exitCode;
  }
  const e = err as Error;
  write(`moe-placer: unexpected error: ${(e?.message ?? String(err)).replace(/\n/g, '; ')}${debug ? '' : ' (MOE_PLACER_DEBUG=1 shows the stack)'}\n`);
  if (debug && e?.stack) write(`${e.stack}\n`);
  return 1;
}

let stdoutGuard = false;

/**
 * Run the CLI on `argv` (the words after `moe-placer`) and return the exit code. Never throws.
 */
export async function main(argv: string[]): Promise<number> {
  if (!stdoutGuard) {
    stdoutGuard = true;
    // A closed pipe (moe-placer ... | head) is not an error of ours.
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
    });
  }
  const ctx: Ctx = { progress: new Progress(), out: (s) => void process.stdout.write(s) };
  try {
    const [cmd, ...rest] = argv;
    if (cmd === undefined) {
      process.stderr.write(helpText());
      return 2;
    }
    if (cmd === 'help' || cmd === '--help' || cmd === '-h') {
      const topic = rest[0];
      if (topic === undefined) ctx.out(helpText());
      else {
        const spec = SPECS[topic];
        if (!spec) throw unknownCommand(topic);
        ctx.out(commandHelp(spec));
      }
      return 0;
    }
    if (cmd === '--version' || cmd === '-V' || cmd === 'version') {
      ctx.out(`${toolVersion()}\n`);
      return 0;
    }
    const spec = SPECS[cmd];
    if (!spec) throw unknownCommand(cmd);
    const flags = parseFlags(spec, rest);
    if (flags.help) {
      ctx.out(commandHelp(spec));
      return 0;
    }
    return await RUNNERS[cmd](flags, ctx);
  } catch (err) {
    ctx.progress.clear();
    return reportError(err);
  }
}

function unknownCommand(cmd: string): InputError {
  const names = [...Object.keys(SPECS), 'help'];
  const near = cmd.startsWith('-') ? undefined : closest(cmd, names);
  return new InputError(
    `unknown command ${JSON.stringify(cmd)}${near ? `; did you mean ${near}?` : ''} (commands: ${names.join(', ')}; see moe-placer help)`,
  );
}
