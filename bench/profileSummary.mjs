// Where a V8 CPU profile's samples fell, by component of the Kafka pipeline or the server: each
// sample goes to the innermost frame's script, except that a frame of a dependency called from
// cellstream's code counts for the dependency (kafkajs's encoding is kafkajs's, whoever called it).
// With --functions N, also the N functions with the most samples of their own (self time).
//   node bench/profileSummary.mjs [--functions N] FILE.cpuprofile [...]
import { readFile } from 'node:fs/promises';

/** Components in the order they are tried against a script URL. */
const COMPONENTS = [
  ['kafkajs', /node_modules\/kafkajs\//],
  ['lmdb', /node_modules\/(lmdb|msgpackr|ordered-binary)\//],
  ['rxjs', /node_modules\/rxjs\//],
  ['ws', /node_modules\/ws\//],
  ['server (ingest, engine pipeline)', /dist\/server\//],
  ['changelog and state', /dist\/state\//],
  ['pipeline, source and sinks', /dist\/(pipelines|sources|sinks|kafka)\//],
  ['engine', /dist\/engine\//],
  ['event decoding', /dist\/events\//],
  ['features', /dist\/features\//],
  ['model and kernel', /dist\/model\//],
  ['node internals', /^node:|^internal\//],
];

const GENERIC = (c) =>
  c.startsWith('native') || c === 'node internals' || c === 'other' || c.startsWith('program');

function componentOf(node) {
  const { url, functionName } = node.callFrame;
  if (functionName === '(garbage collector)') return 'garbage collection';
  if (functionName === '(idle)') return 'idle';
  if (functionName === '(program)') return 'program (native, unattributed)';
  for (const [name, re] of COMPONENTS) if (re.test(url)) return name;
  if (url === '') return `native: ${functionName || '(anonymous)'}`.slice(0, 40);
  return 'other';
}

/** Lines "share%  component" of the non-idle samples, largest first. */
export function summarise(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // A node's component: a dependency's frame below it on the stack wins over cellstream's own.
  const memo = new Map();
  const resolve = (id) => {
    if (memo.has(id)) return memo.get(id);
    const own = componentOf(byId.get(id));
    const up = parent.get(id);
    const outer = up === undefined ? undefined : resolve(up);
    let component = own;
    if (outer === 'kafkajs' || outer === 'lmdb') component = outer;
    // Built-ins (JSON.stringify, Buffer.write, …) count for the code that called them.
    else if (GENERIC(own) && outer !== undefined && !GENERIC(outer) && outer !== 'idle') component = outer;
    memo.set(id, component);
    return component;
  };
  const counts = new Map();
  let total = 0;
  for (const id of profile.samples) {
    const c = resolve(id);
    if (c === 'idle') continue;
    counts.set(c, (counts.get(c) ?? 0) + 1);
    total++;
  }
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([c, n]) => `${((100 * n) / total).toFixed(1).padStart(5)}%  ${c}`)
    .join('\n');
}

/** Lines "share%  function (script:line)" of the `n` functions with the most self samples. */
export function topFunctions(profile, n) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const counts = new Map();
  let total = 0;
  for (const id of profile.samples) {
    const { functionName, url, lineNumber } = byId.get(id).callFrame;
    if (functionName === '(idle)') continue;
    const name = `${functionName || '(anonymous)'} (${url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${lineNumber + 1})`;
    counts.set(name, (counts.get(name) ?? 0) + 1);
    total++;
  }
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, k]) => `${((100 * k) / total).toFixed(1).padStart(5)}%  ${name}`)
    .join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const argv = process.argv.slice(2);
  const at = argv.indexOf('--functions');
  const functions = at === -1 ? 0 : Number(argv.splice(at, 2)[1]);
  for (const file of argv) {
    console.log(file);
    const profile = JSON.parse(await readFile(file, 'utf8'));
    console.log(summarise(profile));
    if (functions > 0) console.log(topFunctions(profile, functions));
  }
}
