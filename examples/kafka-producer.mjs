// Demo producer: the demo customers' visits into a Kafka topic in a loop, keyed by customer, for
// cellstream to consume (docker-compose.yml runs it).
//   node examples/kafka-producer.mjs --brokers localhost:29092 --topic events [--rate 20] [--count N]
// Each message: key = the customer, value = an event as the demo model takes it, e.g.
//   {"key":"customer-16","ts":1767607200000,"values":{"spend":65.14,"channel":"store"}}
// Each lap keeps the file's spacing between visits, shifted so its last visit falls now (cellstream
// refuses events too far ahead of the clock: events.maxTsAhead); a customer's first visit in a lap
// carries "reset": true, so a new lap starts a new sequence instead of going back in time.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { Kafka, logLevel, Partitioners } from 'kafkajs';

const { values: args } = parseArgs({
  options: {
    brokers: { type: 'string', default: 'localhost:29092' },
    topic: { type: 'string', default: 'events' },
    rate: { type: 'string', default: '20' },
    count: { type: 'string' },
    events: { type: 'string', default: new URL('../demo/visits.ndjson', import.meta.url).pathname },
  },
});
const rate = Number(args.rate);
const count = args.count === undefined ? Number.POSITIVE_INFINITY : Number(args.count);
if (!(rate > 0) || !(count >= 0)) throw new Error('--rate must be > 0 and --count >= 0');

const visits = (await readFile(args.events, 'utf8'))
  .split('\n')
  .filter((line) => line.trim() !== '')
  .map((line) => JSON.parse(line))
  .map((e) => ({ ...e, ts: typeof e.ts === 'string' ? Date.parse(e.ts) : e.ts }));
const lastTs = Math.max(...visits.map((e) => e.ts));

const kafka = new Kafka({
  clientId: 'cellstream-demo-producer',
  brokers: args.brokers.split(','),
  logLevel: logLevel.WARN,
});
const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
await producer.connect();
let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => (stopping = true));

let sent = 0;
let shift = 0;
const seen = new Set();
while (!stopping && sent < count) {
  const i = sent % visits.length;
  if (i === 0) {
    shift = Date.now() - lastTs;
    seen.clear();
  }
  const visit = visits[i];
  const event = { ...visit, ts: visit.ts + shift, ...(seen.has(visit.key) ? {} : { reset: true }) };
  seen.add(visit.key);
  await producer.send({ topic: args.topic, messages: [{ key: event.key, value: JSON.stringify(event) }] });
  sent++;
  if (sent < count) await new Promise((resolve) => setTimeout(resolve, 1000 / rate));
}
await producer.disconnect();
console.log(`sent ${sent} events to ${args.topic}`);
