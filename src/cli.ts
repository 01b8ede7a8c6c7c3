import type { Writable } from 'node:stream';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { runConvert } from './commands/convert.js';
import { runReplay } from './commands/replay.js';
import { describeFeatureSpec } from './features/describe.js';
import { loadSidecarSpec } from './features/loadSpec.js';
import { modelFeatures } from './features/modelFeatures.js';
import { loadModel } from './formats/load.js';
import { describeModel, modelFingerprint } from './model/index.js';

/** Where the CLI writes; the process's own streams unless a caller (a test) captures them. */
export interface CliIo {
  readonly stdout: Writable;
  readonly stderr: Writable;
}

/** Exit status: every event applied (or skipped as an already-applied redelivery). */
export const EXIT_OK = 0;
/** Exit status: a fatal error (bad model, unreadable file, usage) stopped the command. */
export const EXIT_FATAL = 1;
/** Exit status: `replay` ran to the end but rejected some lines (reported on stderr). */
export const EXIT_REJECTED = 2;

const EXIT_HELP = `
Exit status:
  0  every event was applied
  1  a fatal error: the command did not run to the end (set CELLSTREAM_DEBUG=1 for a stack trace)
  2  replay ran to the end, but some lines were rejected (reported on stderr as "line N: reason")`;

/**
 * Runs the `cellstream` command line (`argv` as in `process.argv`) and resolves with the exit
 * status; it never calls `process.exit`.
 */
export async function main(argv: string[], io: CliIo = process): Promise<number> {
  let status = EXIT_OK;
  const program = new Command('cellstream')
    .description(
      'Streaming, stateful recurrent-network inference: one LSTM/GRU step per event, per entity key.',
    )
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .addHelpText('after', EXIT_HELP);

  program
    .command('replay')
    .description('run the serving engine over an NDJSON events file, one prediction line per event')
    .requiredOption('--model <file>', 'model: .onnx, TF.js model.json, or .cellstream.json')
    .requiredOption('--input <file>', 'events, one JSON object per line')
    .option('--spec <file>', "feature spec JSON for events with named values (instead of the model's own)")
    .option('--output <file>', 'write predictions here instead of stdout')
    .option(
      '--dead-letter <file>',
      'write rejected lines here, as NDJSON with line, code, reason and raw text',
    )
    .option('--batch <n>', 'events per micro-batch', positiveInteger, 256)
    .addHelpText('after', EXIT_HELP)
    .action(
      async (opts: {
        model: string;
        input: string;
        spec?: string;
        output?: string;
        deadLetter?: string;
        batch: number;
      }) => {
        const model = await loadModel(opts.model);
        const summary = await runReplay({
          model,
          spec: opts.spec === undefined ? undefined : await loadSidecarSpec(opts.spec),
          input: opts.input,
          output: opts.output,
          deadLetter: opts.deadLetter,
          maxBatch: opts.batch,
          stdout: io.stdout,
          stderr: io.stderr,
        });
        status = summary.rejected > 0 ? EXIT_REJECTED : EXIT_OK;
      },
    );

  program
    .command('inspect')
    .description("print a model's layers, inputs, sizes, fingerprint and feature spec")
    .requiredOption('--model <file>', 'model: .onnx, TF.js model.json, or .cellstream.json')
    .option(
      '--spec <file>',
      "check this feature spec against the model and print it (instead of the model's own)",
    )
    .action(async (opts: { model: string; spec?: string }) => {
      const model = await loadModel(opts.model);
      const sidecar = opts.spec === undefined ? undefined : await loadSidecarSpec(opts.spec);
      const features = modelFeatures(model, sidecar);
      const spec = features ? `\n${describeFeatureSpec(features.spec)}` : '';
      io.stdout.write(`${describeModel(model)}${spec}\n`);
    });

  program
    .command('convert')
    .description(
      "save a model in cellstream's own format (.cellstream.json + .cellstream.bin), with its feature spec",
    )
    .requiredOption(
      '--model <file>',
      'model: .onnx, .keras, Keras .h5, TF.js model.json, or .cellstream.json',
    )
    .option('--spec <file>', 'feature spec JSON to check against the model and embed')
    .requiredOption(
      '--output <file>',
      'the manifest to write, ending in .cellstream.json; the weights go beside it',
    )
    .option('--name <name>', "the model's name (default: the name in the file)")
    .option('--version <version>', "the model's version, as in predictions' name@version")
    .action(
      async (opts: { model: string; spec?: string; output: string; name?: string; version?: string }) => {
        const model = await runConvert(opts);
        const label = `${model.name}${model.version ? `@${model.version}` : ''}`;
        const spec = model.metadata?.['features'] ? ' with its feature spec' : '';
        io.stdout.write(
          `wrote ${opts.output}: ${label}${spec}, fingerprint ${modelFingerprint(model).slice(0, 12)}\n`,
        );
      },
    );

  try {
    await program.parseAsync(argv);
    return status;
  } catch (err) {
    // Commander has already printed its own message (or the help it was asked for).
    if (err instanceof CommanderError) return err.exitCode;
    io.stderr.write(`cellstream: ${err instanceof Error ? err.message : String(err)}\n`);
    if (process.env['CELLSTREAM_DEBUG'] === '1' && err instanceof Error && err.stack) {
      io.stderr.write(`${err.stack}\n`);
    }
    return EXIT_FATAL;
  }
}

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}
