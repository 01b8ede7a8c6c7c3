// Repeated end-to-end Kafka runs of one instance, for before/after comparisons of the per-event
// path: each run times `throughput` (bench/kafkaE2e.mjs) on a fresh topic, modes interleaved, and
// the medians are printed. With --profile DIR, each run's pipeline (from its start to lag 0, the
// producing of the input left out) is CPU-profiled through the inspector and written to DIR, with
// a summary of where the samples fell by component (bench/profileSummary.mjs).
//   scripts/kafka/with-kafka.sh node bench/kafkaLean.mjs [--events 100000] [--keys 10000]
//     [--runs 3] [--modes at-least-once,exactly-once,passthrough] [--commit-interval MS]
//     [--profile DIR] [--model demo/visits.cellstream.json] [--client kafkajs|platformatic]
import { mkdir, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadModel } from '../dist/formats/load.js';
import { kafkaClient, modelEvents, throughput } from './kafkaE2e.mjs';
import { summarise } from './profileSummary.mjs';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '100000' },
    keys: { type: 'string', default: '10000' },
    partitions: { type: 'string', default: '6' },
    batch: { type: 'string', default: '1000' },
    runs: { type: 'string', default: '3' },
    modes: { type: 'string', default: 'at-least-once,exactly-once' },
    'commit-interval': { type: 'string' },
    profile: { type: 'string' },
    model: { type: 'string', default: 'demo/visits.cellstream.json' },
    client: { type: 'string', default: 'kafkajs' },
  },
  allowPositionals: true,
});
const kafka = kafkaClient();
const model = await loadModel(new URL(`../${args.model}`, import.meta.url).pathname);
const messages = modelEvents(model, Number(args.events), Number(args.keys));
const modes = args.modes.split(',');
const pipelineOptions =
  args['commit-interval'] === undefined ? {} : { commitIntervalMs: Number(args['commit-interval']) };
if (args.profile) await mkdir(args.profile, { recursive: true });

const session = new Session();
session.connect();
const results = Object.fromEntries(modes.map((m) => [m, []]));
for (let run = 0; run < Number(args.runs); run++) {
  for (const mode of modes) {
    const hooks = args.profile
      ? {
          started: async () => {
            await session.post('Profiler.enable');
            await session.post('Profiler.setSamplingInterval', { interval: 500 });
            await session.post('Profiler.start');
          },
          finished: async () => {
            const { profile } = await session.post('Profiler.stop');
            const file = join(args.profile, `${args.client}-${mode}-${run}.cpuprofile`);
            await writeFile(file, JSON.stringify(profile));
            console.error(`${file}\n${summarise(profile)}`);
          },
        }
      : {};
    const r = await throughput(kafka, {
      model,
      messages,
      partitions: Number(args.partitions),
      batch: Number(args.batch),
      exactlyOnce: mode === 'exactly-once',
      passthrough: mode === 'passthrough',
      pipelineOptions,
      hooks,
      client: args.client,
    });
    results[mode].push(r);
    console.log(JSON.stringify(r));
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const mode of modes) {
  const rs = results[mode];
  console.log(
    JSON.stringify({
      median: mode,
      runs: rs.length,
      eventsPerSecond: median(rs.map((r) => r.eventsPerSecond)),
      cpuMicrosPerEvent: median(rs.map((r) => r.cpuMicrosPerEvent)),
    }),
  );
}
session.disconnect();
