// `poolpilot <command> [flags]`: argument parsing and usage. Loaded by the entry point (cli.ts)
// once it has checked the Node version.
import { parseArgs } from 'node:util';
import { ConfigError, FLAGS, loadConfig, type FlagName, type FlagSpec } from './config.js';
import { main, type Command } from './main.js';

const COMMANDS: Readonly<Record<Command, string>> = {
  run: 'run the controller until SIGTERM/SIGINT',
  once: 'reconcile every PoolPolicy once, print what was decided, exit (for scripts)',
};

function usage(): string {
  const width = Math.max(...FLAGS.map((f) => f.flag.length)) + 4;
  const flagLines = (FLAGS as readonly FlagSpec[]).map(
    (f) =>
      `  --${f.flag.padEnd(width)}${f.help}${f.default === undefined ? '' : ` (default ${f.default})`} [env ${f.env}]`,
  );
  return [
    'Usage: poolpilot <command> [flags]',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([name, help]) => `  ${name.padEnd(width + 2)}${help}`),
    '',
    'Flags:',
    ...flagLines,
    `  --${'help'.padEnd(width)}show this help`,
  ].join('\n');
}

function isCommand(value: string | undefined): value is Command {
  return value !== undefined && Object.hasOwn(COMMANDS, value);
}

/** Flags that may be given bare (`--leader-elect`), meaning `true`; `--flag=false` / `--flag false` also work. */
const BARE_TRUE_FLAGS: ReadonlySet<string> = new Set(['--leader-elect', '--enforce-namespace-label']);

/** Rewrites a bare boolean-ish flag (not followed by true/false) to `--flag=true`. */
export function expandBareFlags(argv: readonly string[]): string[] {
  return argv.map((arg, i) =>
    BARE_TRUE_FLAGS.has(arg) && !['true', 'false'].includes(argv[i + 1] ?? '') ? `${arg}=true` : arg,
  );
}

/** Parses argv; on a usage error prints what to fix and returns exit code 2. */
export async function cli(argv: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: expandBareFlags(argv),
      allowPositionals: true,
      strict: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        ...Object.fromEntries(FLAGS.map((f) => [f.flag, { type: 'string' as const }])),
      },
    });
  } catch (err) {
    process.stderr.write(`poolpilot: ${err instanceof Error ? err.message : String(err)}\n\n${usage()}\n`);
    return 2;
  }
  const [command, ...extra] = parsed.positionals;
  if (parsed.values.help === true) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  if (!isCommand(command) || extra.length > 0) {
    process.stderr.write(
      `poolpilot: expected one command (${Object.keys(COMMANDS).join(' or ')}), got '${parsed.positionals.join(' ')}'\n\n${usage()}\n`,
    );
    return 2;
  }
  const values: Readonly<Record<string, string | boolean | undefined>> = parsed.values;
  const flags: Partial<Record<FlagName, string>> = {};
  for (const f of FLAGS) {
    const value = values[f.flag];
    if (typeof value === 'string') flags[f.flag] = value;
  }
  let config;
  try {
    config = loadConfig(flags, process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`poolpilot: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  try {
    return await main(command, config);
  } catch (err) {
    // A setting only the start-up can check (the kubeconfig file): refused like a bad flag.
    if (err instanceof ConfigError) {
      process.stderr.write(`poolpilot: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
