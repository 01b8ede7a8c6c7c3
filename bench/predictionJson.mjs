// Whether a prediction encoder written for the prediction's layout beats JSON.stringify, per
// prediction, counting the UTF-8 length kafkajs takes of each value (which flattens a
// concatenated string). Predictions are the demo model's shape: key, ts, seq, model, one output,
// a decoded `value`. Best of 7 passes over 100k predictions, 3 rounds.
//   node bench/predictionJson.mjs

const N = 100_000;
const predictions = Array.from({ length: N }, (_, i) => {
  const output = [Math.fround(Math.sin(i) / 2 + 0.5)];
  return {
    key: `k${i % 10_000}`,
    ts: 1_700_000_000_000 + i * 86_400_000,
    seq: (i % 50) + 1,
    model: 'visits@1',
    output,
    value: output[0] * 42.5 + 3,
  };
});

const number = (x) => (Number.isFinite(x) ? `${x}` : 'null');
/** JSON of a string, without the generic path when nothing needs escaping. */
function quote(s) {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || c > 0x7e) return JSON.stringify(s);
  }
  return `"${s}"`;
}
const FIELDS = ['key', 'ts', 'seq', 'model', 'output'];

/** Any prediction: the five fields by hand, decoded fields after them, else JSON.stringify. */
function generic(p) {
  let s = `{"key":${quote(p.key)},"ts":${number(p.ts)},"seq":${number(p.seq)},"model":${quote(p.model)},"output":[`;
  for (let i = 0; i < p.output.length; i++) s += (i === 0 ? '' : ',') + number(p.output[i]);
  s += ']';
  let i = 0;
  for (const k in p) {
    if (i < 5) {
      if (k !== FIELDS[i++]) return JSON.stringify(p);
      continue;
    }
    const v = JSON.stringify(p[k]);
    if (v !== undefined) s += `,${JSON.stringify(k)}:${v}`;
  }
  return `${s}}`;
}

/** This layout only (one model label, a numeric `value`), the model's part written once. */
const modelPart = `,"model":${quote('visits@1')},"output":[`;
function layout(p) {
  let s = `{"key":${quote(p.key)},"ts":${number(p.ts)},"seq":${number(p.seq)}${modelPart}`;
  for (let i = 0; i < p.output.length; i++) s += (i === 0 ? '' : ',') + number(p.output[i]);
  return `${s}],"value":${number(p.value)}}`;
}

const encoders = { 'JSON.stringify': (p) => JSON.stringify(p), generic, layout };
for (const [name, encode] of Object.entries(encoders)) {
  for (const p of predictions.slice(0, 1000)) {
    if (encode(p) !== JSON.stringify(p)) throw new Error(`${name} differs: ${encode(p)}`);
  }
}
function perPrediction(encode) {
  let best = Number.POSITIVE_INFINITY;
  for (let pass = 0; pass < 7; pass++) {
    const t = performance.now();
    let bytes = 0;
    for (const p of predictions) bytes += Buffer.byteLength(encode(p));
    best = Math.min(best, performance.now() - t);
    if (bytes === 0) throw new Error('nothing encoded');
  }
  return +((best * 1000) / N).toFixed(3);
}
for (let round = 0; round < 3; round++) {
  const row = {};
  for (const [name, encode] of Object.entries(encoders)) row[name] = perPrediction(encode);
  console.log(JSON.stringify({ microsecondsPerPrediction: row }));
}
