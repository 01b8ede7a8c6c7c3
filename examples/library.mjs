// cellstream as a library: the demo model over the demo events, one line per outcome.
//   node examples/library.mjs [MODEL] [EVENTS.ndjson]   (defaults: the demo files of this checkout)
import { readFile } from 'node:fs/promises';
import { KeyedStepper, loadModel, MemoryStateStore, modelFeatures, stepByKey } from 'cellstream';
import { from } from 'rxjs';

const demo = (file) => new URL(`../demo/${file}`, import.meta.url).pathname;
const [modelFile = demo('visits.cellstream.json'), eventsFile = demo('visits.ndjson')] =
  process.argv.slice(2);

const model = await loadModel(modelFile);
// The model's embedded feature spec encodes an event's named `values` and decodes the output.
const features = modelFeatures(model);
const stepper = new KeyedStepper({
  model,
  store: new MemoryStateStore({ maxKeys: 100_000 }),
  encodeValues: features?.encodeValues,
  decodePrediction: features?.decode,
});

// stepByKey takes plain event objects (as here), JSON texts, or the envelopes cellstream's sources emit.
const lines = (await readFile(eventsFile, 'utf8')).split('\n').filter((line) => line.trim() !== '');
const events$ = from(lines.map((line) => JSON.parse(line)));

let predictions = 0;
let rejected = 0;
await new Promise((resolve, reject) =>
  events$.pipe(stepByKey(stepper, { maxBatch: 256 })).subscribe({
    next: (outcome) => {
      if (outcome.kind === 'prediction') {
        const p = outcome.prediction;
        predictions++;
        console.log(`${p.key} #${p.seq}: ${JSON.stringify(p.next_interval_days ?? p.label ?? p.output)}`);
      } else if (outcome.kind === 'rejected') {
        rejected++;
        console.error(`rejected ${outcome.code}: ${outcome.reason}`);
      }
    },
    error: reject,
    complete: resolve,
  }),
);
await stepper.close();
console.log(`${predictions} predictions, ${rejected} rejected`);
