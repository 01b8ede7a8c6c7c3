import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { type AdminFlags, runAdmin } from './commands/admin.js';
import { runConvert } from './commands/convert.js';
import { runKafka } from './commands/kafka.js';
import { runReplay } from './commands/replay.js';
import { runServe, type ServeFlags } from './commands/serve.js';
import { shutdownSignal } from './commands/shutdownSignals.js';
import { runStateMove } from './commands/state.js';
import { runWarm, WARM_DEAD_LETTER_FILE } from './commands/warm.js';
import { UsageError } from './errors.js';
import { DEFAULT_MAX_JSON_DEPTH } from './events/jsonDepth.js';
import { parseMaxTsAhead } from './events/limits.js';
import { describeFeatureSpec } from './features/describe.js';
import { loadSidecarSpec } from './features/loadSpec.js';
import { modelFeatures } from './features/modelFeatures.js';
import { loadModel } from './formats/load.js';
import { KAFKA_CLIENTS, type KafkaClientName } from './kafka/adapter.js';
import { describeModel, modelFingerprint } from './model/index.js';
import { PACKAGE_ROOT } from './paths.js';
import { KAFKA_WORKERS } from './pipelines/commitDefaults.js';
import { loadFormatsFile } from './records/formatsFile.js';
import { parseDuration } from './time/duration.js';

/** Where the CLI writes; the process's own streams unless a caller (a test) captures them. */
export interface CliIo {
  readonly stdout: Writable;
  readonly stderr: Writable;
  /** Read by `replay --input -`; the process's stdin when absent. */
  readonly stdin?: Readable;
}

/** The model formats every `--model` option takes, for the help text. */
const MODEL_HELP = 'model: .onnx, .keras or Keras .h5, TF.js model.json, or .cellstream.json';

/** The installed package's version, from its package.json (dist/ and src/ sit one level below it). */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/** Exit status: every event applied (or skipped as an already-applied redelivery). */
export const EXIT_OK = 0;
/** Exit status: a fatal error (bad model, unreadable file, usage) stopped the command. */
export const EXIT_FATAL = 1;
/** Exit status: `replay` or `warm` ran to the end but rejected some lines (reported on stderr). */
export const EXIT_REJECTED = 2;

const EXIT_HELP = `
Exit status:
  0  every event was applied, or replay stopped because the reader of its stdout closed it ('| head')
  1  a fatal error: the command did not run to the end (set CELLSTREAM_DEBUG=1 for a stack trace)
  2  replay or warm ran to the end, but some lines were rejected (reported on stderr as "line N: reason")`;

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
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    // Program options only before the command: `convert --version V` is the model's version.
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .addHelpText('after', EXIT_HELP);

  const replay = program
    .command('replay')
    .description('run the serving engine over an NDJSON events file, one prediction line per event')
    .requiredOption('--model <file>', MODEL_HELP)
    .requiredOption('--input <file>', "events, one JSON object per line; '-' reads stdin")
    .option('--spec <file>', "feature spec JSON for events with named values (instead of the model's own)")
    .option('--output <file>', 'write predictions here instead of stdout')
    .option(
      '--dead-letter <file>',
      'write rejected lines here, as NDJSON with line, code, reason and raw text',
    )
    .option('--batch <n>', 'events per micro-batch', positiveInteger, 256)
    .option(
      '--state <dir>',
      'keep per-key state in this LMDB directory: a second run applies only what it has not applied yet ' +
        '(resume after a crash, or continue a longer file); --output and --dead-letter are then appended to',
    )
    .addOption(
      new Option(
        '--on-model-mismatch <policy>',
        'state written by another model: refuse to start, or reset those keys',
      )
        .choices(['refuse', 'reset'])
        .default('refuse'),
    )
    .option(
      '--max-keys-in-memory <n>',
      'hold at most n keys’ state in memory, the rest in --state (default: no cap)',
      positiveInteger,
    )
    .option('--ttl <duration>', 'expire keys idle for longer than this, e.g. 30d, 12h (default: never)')
    .addOption(
      new Option('--ttl-clock <clock>', 'measure idleness in event time or processing (wall-clock) time')
        .choices(['event', 'processing'])
        .default('event'),
    )
    .option(
      '--source-name <name>',
      'the name --state remembers the input by (default: its absolute path, so a moved file counts as new)',
    )
    .option(
      '--max-json-depth <n>',
      'reject lines nesting arrays and objects deeper than this (EVENT_TOO_DEEP)',
      positiveInteger,
      DEFAULT_MAX_JSON_DEPTH,
    )
    .option(
      '--max-ts-ahead <duration>',
      'reject events whose ts lies more than this ahead of the wall clock, e.g. 1d (default: off, files of any era)',
    );
  withEventLimitOptions(replay)
    .addHelpText('after', EXIT_HELP)
    .action(async (opts: ReplayFlags) => {
      const model = await loadModel(opts.model);
      const summary = await runReplay({
        model,
        spec: opts.spec === undefined ? undefined : await loadSidecarSpec(opts.spec),
        input: opts.input,
        stdin: io.stdin ?? process.stdin,
        output: opts.output,
        deadLetter: opts.deadLetter,
        maxBatch: opts.batch,
        state: opts.state,
        onModelMismatch: opts.onModelMismatch,
        maxKeysInMemory: opts.maxKeysInMemory,
        ttl:
          opts.ttl === undefined
            ? undefined
            : { ttlMs: parseDuration(opts.ttl, '--ttl'), clock: opts.ttlClock },
        sourceName: opts.sourceName,
        maxJsonDepth: opts.maxJsonDepth,
        limits: {
          ...(opts.maxKeyBytes === undefined ? {} : { maxKeyBytes: opts.maxKeyBytes }),
          ...(opts.maxIdBytes === undefined ? {} : { maxIdBytes: opts.maxIdBytes }),
          maxTsAheadMs:
            opts.maxTsAhead === undefined ? undefined : parseMaxTsAhead(opts.maxTsAhead, '--max-ts-ahead'),
        },
        idWindow: opts.idWindow,
        stdout: io.stdout,
        stderr: io.stderr,
      });
      status = summary.rejected > 0 ? EXIT_REJECTED : EXIT_OK;
    });

  const warm = program
    .command('warm')
    .description(
      "compute a model's per-key state from an NDJSON archive of past events, so it serves those keys from their whole history",
    )
    .requiredOption('--model <file>', `the model to warm (only it is stepped); ${MODEL_HELP}`)
    .requiredOption(
      '--input <file>',
      'the archive: past events, one JSON object per line, oldest first per key',
    )
    .requiredOption(
      '--state <dir>',
      'the LMDB state directory the model will serve from; run again, it steps only what it has not applied',
    )
    .option(
      '--namespace <name>',
      "write the model's namespace (e.g. visits@2) in the state of serve with several models, --state being serve's state.path (docs/rollout.md)",
    )
    .option('--spec <file>', "feature spec JSON for events with named values (instead of the model's own)")
    .option(
      '--dead-letter <file>',
      `append rejected lines here, as NDJSON with line, code, reason and raw text (default <state>/${WARM_DEAD_LETTER_FILE})`,
    )
    .option('--batch <n>', 'events stepped together (default 1024)', positiveInteger)
    .option(
      '--max-staged-keys <n>',
      'keys whose state is held in memory before it is written to --state (default 20000)',
      positiveInteger,
    )
    .addOption(
      new Option(
        '--on-model-mismatch <policy>',
        'state written by another model: refuse to start, or replace those keys’ state',
      )
        .choices(['refuse', 'reset'])
        .default('refuse'),
    )
    .option(
      '--source-name <name>',
      'the name --state remembers the archive by (default: its absolute path, so a moved file counts as new)',
    )
    .option(
      '--max-json-depth <n>',
      'reject lines nesting arrays and objects deeper than this (EVENT_TOO_DEEP)',
      positiveInteger,
      DEFAULT_MAX_JSON_DEPTH,
    );
  withEventLimitOptions(warm)
    .addHelpText('after', EXIT_HELP)
    .action(async (opts: WarmFlags) => {
      const summary = await runWarm({
        model: await loadModel(opts.model),
        spec: opts.spec === undefined ? undefined : await loadSidecarSpec(opts.spec),
        input: opts.input,
        state: opts.state,
        namespace: opts.namespace,
        deadLetter: opts.deadLetter,
        maxBatch: opts.batch,
        maxStagedKeys: opts.maxStagedKeys,
        onModelMismatch: opts.onModelMismatch,
        sourceName: opts.sourceName,
        maxJsonDepth: opts.maxJsonDepth,
        limits: {
          ...(opts.maxKeyBytes === undefined ? {} : { maxKeyBytes: opts.maxKeyBytes }),
          ...(opts.maxIdBytes === undefined ? {} : { maxIdBytes: opts.maxIdBytes }),
        },
        idWindow: opts.idWindow,
        stderr: io.stderr,
      });
      status = summary.rejected > 0 ? EXIT_REJECTED : EXIT_OK;
    });

  program
    .command('serve')
    .description(
      'serve WebSocket ingest and subscriptions, HTTP metrics and the dashboard; with no options, the demo model on 127.0.0.1:8080',
    )
    .option('--config <file>', 'YAML configuration file (env CELLSTREAM_CONFIG); see docs/configuration.md')
    .option('--model <file>', `${MODEL_HELP} (env CELLSTREAM_MODEL; default: the demo model)`)
    .option(
      '--shadow <file>',
      'a second model stepped beside --model as a shadow, to compare and promote (env CELLSTREAM_SHADOW); see docs/rollout.md',
    )
    .option('--host <host>', 'address to bind (env CELLSTREAM_HOST; default 127.0.0.1)')
    .option('--port <port>', 'port, 0 for any free one (env CELLSTREAM_PORT; default 8080)', port)
    .option('--state <dir>', 'LMDB state directory (env CELLSTREAM_STATE; default ./.data/state)')
    .option('--demo-feed', 'replay the demo events in a loop, so the dashboard has something to show')
    .option(
      '--log-level <level>',
      'fatal, error, warn, info, debug, trace or silent (env CELLSTREAM_LOG_LEVEL)',
    )
    .option(
      '--kafka-brokers <list>',
      'Kafka mode: bootstrap brokers, comma-separated host:port (env CELLSTREAM_KAFKA_BROKERS); see docs/kafka.md',
    )
    .option(
      '--input-topic <topic>',
      'Kafka mode: events, keyed by entity key (env CELLSTREAM_KAFKA_INPUT_TOPIC)',
    )
    .option('--output-topic <topic>', 'Kafka mode: predictions (env CELLSTREAM_KAFKA_OUTPUT_TOPIC)')
    .option(
      '--group-id <id>',
      'Kafka mode: consumer group shared by all instances (env CELLSTREAM_KAFKA_GROUP_ID)',
    )
    .option('--dead-letter-topic <topic>', 'Kafka mode: rejected events (default <input-topic>-dead-letter)')
    .option(
      '--changelog-topic <topic>',
      'Kafka mode: compacted state changelog (default <group-id>-state-changelog)',
    )
    .option(
      '--exactly-once',
      'Kafka mode: predictions, state changelog and offsets in one transaction per batch',
    )
    .addOption(
      new Option(
        '--kafka-client <name>',
        'Kafka mode: client library (env CELLSTREAM_KAFKA_CLIENT; default kafkajs); see docs/kafka.md',
      ).choices(KAFKA_CLIENTS),
    )
    .addOption(
      new Option(
        '--standbys <n>',
        'Kafka mode: 1 keeps standby state for every partition not owned, for fast failover (env CELLSTREAM_KAFKA_STANDBYS; default 0)',
      ).choices(['0', '1']),
    )
    .action(async (opts: ServeFlags) => {
      await runServe(opts);
    });

  program
    .command('promote')
    .description(
      "make a running serve's shadow model primary (POST /admin/promote); the old primary keeps stepping as the shadow",
    )
    .option('--url <url>', 'the server', 'http://127.0.0.1:8080')
    .option(
      '--token-env <name>',
      'environment variable holding a token with the admin scope',
      'CELLSTREAM_ADMIN_TOKEN',
    )
    .option('--model <name>', 'the model to promote (default: the only shadow)')
    .action(async (opts: AdminFlags) => {
      status = await runAdmin('promote', opts, io);
    });

  program
    .command('rollback')
    .description(
      'switch a running serve back to the model that was primary before the last switch (POST /admin/rollback)',
    )
    .option('--url <url>', 'the server', 'http://127.0.0.1:8080')
    .option(
      '--token-env <name>',
      'environment variable holding a token with the admin scope',
      'CELLSTREAM_ADMIN_TOKEN',
    )
    .action(async (opts: AdminFlags) => {
      status = await runAdmin('rollback', opts, io);
    });

  const state = program
    .command('state')
    .description(
      "move a model's state between a single-model state directory and its namespace of serve with several models (stopped service only)",
    );
  const STATE_MOVES = [
    {
      name: 'adopt',
      description:
        "move the state of a single-model directory into the model's namespace of serve with several models, so a rollout continues every key (docs/rollout.md)",
      state: 'the single-model state directory (the state.path serve with one model used)',
      to: 'the state.path of serve with several models (default: --state itself; the namespace goes in <to>/models)',
    },
    {
      name: 'retire',
      description:
        "move a model's namespace of serve with several models back to a single-model directory, so serve --model continues every key (docs/rollout.md)",
      state: 'the state.path of serve with several models (the namespace is in <state>/models)',
      to: 'the single-model state directory to write (default: --state itself)',
    },
  ] as const;
  for (const move of STATE_MOVES) {
    state
      .command(move.name)
      .description(move.description)
      .requiredOption(
        '--model <file>',
        `the model whose state moves; every record must carry its fingerprint; ${MODEL_HELP}`,
      )
      .requiredOption('--state <dir>', move.state)
      .requiredOption(
        '--namespace <name>',
        "the model's name in serve with several models (models[].name, or name@version)",
      )
      .option('--to <dir>', move.to)
      .action(async (opts: { model: string; state: string; namespace: string; to?: string }) => {
        await runStateMove(move.name, {
          model: await loadModel(opts.model),
          state: opts.state,
          to: opts.to,
          namespace: opts.namespace,
          stdout: io.stdout,
        });
      });
  }

  program
    .command('inspect')
    .description("print a model's layers, inputs, sizes, fingerprint and feature spec")
    .requiredOption('--model <file>', MODEL_HELP)
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
    .requiredOption('--model <file>', MODEL_HELP)
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

  const kafka = program
    .command('kafka')
    .description('consume events from a Kafka topic and publish predictions, until SIGTERM or SIGINT')
    .requiredOption('--model <file>', MODEL_HELP)
    .requiredOption('--kafka-brokers <list>', 'bootstrap brokers, comma-separated host:port')
    .requiredOption('--input-topic <topic>', 'events, keyed by entity key')
    .requiredOption('--output-topic <topic>', 'predictions, keyed by entity key')
    .requiredOption('--group-id <id>', 'consumer group shared by all instances')
    .option('--state <dir>', "this instance's LMDB state directory (required)")
    // The flag's first name; every other command calls it --state. Kept so scripts keep working.
    .addOption(new Option('--state-dir <dir>', 'deprecated: --state').hideHelp())
    .option('--dead-letter-topic <topic>', 'rejected events (default <input-topic>-dead-letter)')
    .option('--changelog-topic <topic>', 'compacted state changelog (default <group-id>-state-changelog)')
    .option('--exactly-once', 'predictions, state changelog and offsets in one Kafka transaction per commit')
    .addOption(
      new Option('--kafka-client <name>', 'client library (default kafkajs); see docs/kafka.md').choices(
        KAFKA_CLIENTS,
      ),
    )
    .option('--batch <n>', 'events per engine batch', positiveInteger)
    .option(
      '--workers <n>',
      `consumer group members in this process, each on its own worker thread when above 1 (${KAFKA_WORKERS.min} to ${KAFKA_WORKERS.max}, default ${KAFKA_WORKERS.default}); about one per core`,
      workerCount,
    )
    .option(
      '--standbys <n>',
      'standby state: 1 follows the changelog of every partition this instance does not own, so a takeover restores only the tail (default 0)',
      standbyCount,
    )
    .option(
      '--commit-interval <ms>',
      'longest state is held in memory (each key written to the changelog once) before it is made durable and offsets commit, while events wait; 0: every batch (default 1000)',
      nonNegativeInteger,
    )
    .option(
      '--max-cached-keys <n>',
      'most keys held in memory between commits (default 20000)',
      positiveInteger,
    )
    .option(
      '--session-timeout <ms>',
      'consumer group session timeout (how soon a dead instance is noticed)',
      positiveInteger,
    )
    .option('--heartbeat-interval <ms>', 'consumer group heartbeat interval', positiveInteger)
    .addOption(
      new Option(
        '--on-consumer-crash <policy>',
        'after a consumer crash kafkajs does not recover from: rejoin the group (up to --max-rejoins in a row), or exit non-zero',
      ).choices(['rejoin', 'exit']),
    )
    .option(
      '--max-rejoins <n>',
      'rejoins in a row without a committed batch before exiting non-zero (default 5)',
      nonNegativeInteger,
    )
    .option(
      '--stall-timeout <ms>',
      'no batch committed for this long while events wait: /readyz 503, logged once (default 60000)',
      positiveInteger,
    )
    .option('--http-host <host>', 'address of /healthz, /readyz and /metrics (default 127.0.0.1)')
    .option(
      '--http-port <port>',
      'port of /healthz, /readyz and /metrics, 0 for any free one (default 8081)',
      port,
    )
    .option(
      '--max-ts-ahead <duration>',
      "dead-letter events whose ts lies more than this ahead of the wall clock, or 'off'",
      '1d',
    )
    .option(
      '--formats <file>',
      'YAML: schema registry, input format (avro, json-schema, protobuf, CloudEvents) and field mapping, output format (docs/kafka.md)',
    );
  withEventLimitOptions(kafka).action(
    async (opts: {
      model: string;
      kafkaBrokers: string;
      inputTopic: string;
      outputTopic: string;
      groupId: string;
      state?: string;
      stateDir?: string;
      deadLetterTopic?: string;
      changelogTopic?: string;
      exactlyOnce?: boolean;
      kafkaClient?: KafkaClientName;
      standbys?: number;
      batch?: number;
      workers?: number;
      commitInterval?: number;
      maxCachedKeys?: number;
      sessionTimeout?: number;
      heartbeatInterval?: number;
      onConsumerCrash?: 'rejoin' | 'exit';
      maxRejoins?: number;
      stallTimeout?: number;
      httpHost?: string;
      httpPort?: number;
      maxTsAhead: string;
      maxKeyBytes?: number;
      maxIdBytes?: number;
      idWindow?: number;
      formats?: string;
    }) => {
      // First thing: SIGTERM while the model loads asks for a clean stop instead of killing.
      shutdownSignal();
      const stateDir = kafkaStateDir(opts, io.stderr);
      const formats = opts.formats === undefined ? {} : await loadFormatsFile(opts.formats);
      await runKafka(
        await loadModel(opts.model),
        {
          ...opts,
          ...formats,
          stateDir,
          brokers: opts.kafkaBrokers,
          client: opts.kafkaClient,
          maxBatch: opts.batch,
          commitIntervalMs: opts.commitInterval,
          stallTimeoutMs: opts.stallTimeout,
        },
        io.stderr,
        { host: opts.httpHost, port: opts.httpPort },
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

/** `kafka`'s state directory: `--state`, or its deprecated first name `--state-dir` (with a warning). */
function kafkaStateDir(opts: { state?: string; stateDir?: string }, stderr: Writable): string {
  if (opts.stateDir !== undefined) {
    if (opts.state !== undefined && opts.state !== opts.stateDir) {
      throw new UsageError('--state and --state-dir name different directories; give only --state');
    }
    stderr.write('cellstream: --state-dir is deprecated and will be removed; use --state\n');
    return opts.stateDir;
  }
  if (opts.state === undefined)
    throw new UsageError("kafka needs --state <dir>: this instance's LMDB state directory");
  return opts.state;
}

function workerCount(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < KAFKA_WORKERS.min || n > KAFKA_WORKERS.max)
    throw new InvalidArgumentError(`expected an integer from ${KAFKA_WORKERS.min} to ${KAFKA_WORKERS.max}`);
  return n;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535)
    throw new InvalidArgumentError('expected a port, 0 to 65535');
  return n;
}

interface ReplayFlags {
  model: string;
  input: string;
  spec?: string;
  output?: string;
  deadLetter?: string;
  batch: number;
  state?: string;
  onModelMismatch: 'refuse' | 'reset';
  maxKeysInMemory?: number;
  ttl?: string;
  ttlClock: 'event' | 'processing';
  sourceName?: string;
  maxJsonDepth: number;
  maxTsAhead?: string;
  maxKeyBytes?: number;
  maxIdBytes?: number;
  idWindow?: number;
}

interface WarmFlags {
  model: string;
  input: string;
  state: string;
  namespace?: string;
  spec?: string;
  deadLetter?: string;
  batch?: number;
  maxStagedKeys?: number;
  onModelMismatch: 'refuse' | 'reset';
  sourceName?: string;
  maxJsonDepth: number;
  maxKeyBytes?: number;
  maxIdBytes?: number;
  idWindow?: number;
}

/** The per-event limits `replay`, `warm` and `kafka` share (serve takes them from its config). */
function withEventLimitOptions(command: Command): Command {
  return command
    .option('--max-key-bytes <n>', 'longest key in UTF-8 bytes (default 512, at most 1977)', positiveInteger)
    .option('--max-id-bytes <n>', 'longest id in UTF-8 bytes (default 128)', positiveInteger)
    .option(
      '--id-window <n>',
      'ids remembered per key: a resent id among them is a duplicate (default 8)',
      positiveInteger,
    );
}

function nonNegativeInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number, 0 or more');
  return n;
}

/** `--standbys`: 0 or 1 (every partition not owned; no placement of fewer copies yet). */
function standbyCount(value: string): number {
  if (value !== '0' && value !== '1')
    throw new InvalidArgumentError('expected 0 or 1 (1: follow every changelog partition not owned)');
  return Number(value);
}

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}
