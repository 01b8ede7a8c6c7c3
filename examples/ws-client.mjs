// Sends one event to a running cellstream (`npm start`) and prints its answer.  node examples/ws-client.mjs [URL]
import WebSocket from 'ws';

const url = process.argv[2] ?? 'ws://127.0.0.1:8080/ingest';
const event = { key: 'customer-42', ts: '2026-01-05T10:00:00Z', values: { spend: 52.5, channel: 'app' } };
const ws = new WebSocket(url);
ws.on('open', () => ws.send(JSON.stringify(event)));
ws.on('message', (answer) => {
  console.log(String(answer));
  ws.close();
});
ws.on('error', (err) => {
  console.error(`cannot reach ${url}: ${err.message} (is \`npm start\` running?)`);
  process.exitCode = 1;
});
