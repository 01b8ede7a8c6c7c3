// The record decode layer's pure parts: Confluent framing and Protobuf message indexes, the field
// mapping and CloudEvents, the generated prediction schemas, and the settings that refuse a
// configuration that could not work. The registry formats end to end: test/integration/kafka-records.test.ts.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import avro from 'avsc';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { Envelope, Rejected } from '../../src/engine/types.js';
import { ConfigError, type EventError, RegistryUnavailableError } from '../../src/errors.js';
import { inputConfig, outputConfig } from '../../src/records/config.js';
import { protobufTypeAt, RecordDecoder, type RecordLike } from '../../src/records/decode.js';
import { PredictionEncoder, predictionAvroSchema, subjectName } from '../../src/records/encode.js';
import { loadFormatsFile } from '../../src/records/formatsFile.js';
import { RegistryClient } from '../../src/records/registry.js';
import { encodeMessageIndexes, frame, readMessageIndexes, unframe } from '../../src/records/wire.js';
import { tempDir } from '../helpers/fixtures.js';

const record = (value: string | Buffer | null, extra: Partial<RecordLike> = {}): RecordLike => ({
  key: null,
  value: typeof value === 'string' ? Buffer.from(value) : value,
  offset: '7',
  ...extra,
});

function rejected(out: Envelope | Rejected): Rejected {
  if (!('kind' in out)) throw new Error(`expected a rejection, got ${JSON.stringify(out)}`);
  return out;
}
function accepted(out: Envelope | Rejected): Envelope {
  if ('kind' in out) throw new Error(`expected an event, got ${out.code}: ${out.reason}`);
  return out;
}

describe('Confluent wire format', () => {
  it('reads message indexes as Confluent serializers write them, [0] as the single byte 0', () => {
    // Bytes as the Java serializer writes them: zig-zag count, then zig-zag indexes.
    expect(readMessageIndexes(Buffer.from([0x00, 0xaa]))).toEqual({ path: [0], offset: 1 });
    expect(readMessageIndexes(Buffer.from([0x02, 0x02, 0xaa]))).toEqual({ path: [1], offset: 2 });
    expect(readMessageIndexes(Buffer.from([0x04, 0x04, 0x00, 0xaa]))).toEqual({ path: [2, 0], offset: 3 });
    for (const path of [[0], [1], [3, 1, 0], [200]]) {
      const bytes = Buffer.concat([encodeMessageIndexes(path), Buffer.from([0xee])]);
      expect(readMessageIndexes(bytes).path).toEqual(path);
    }
  });

  it('refuses a value too short, without the magic byte, or with indexes past its end, as EVENT_UNDECODABLE', () => {
    for (const bad of [Buffer.from([0, 0, 1]), Buffer.from('{"key":"a"}')]) {
      expect(() => unframe(bad, 'avro')).toThrow(/does not decode as avro/);
    }
    try {
      readMessageIndexes(Buffer.from([0x04, 0x02]));
      throw new Error('expected a throw');
    } catch (err) {
      expect((err as EventError).code).toBe('EVENT_UNDECODABLE');
    }
    const framed = frame(258, Buffer.from([9]));
    expect(unframe(framed, 'avro')).toEqual({ schemaId: 258, body: Buffer.from([9]) });
  });
});

describe('RecordDecoder without a registry (JSON and CloudEvents)', () => {
  const mapped = new RecordDecoder({
    input: inputConfig({ mapping: { key: 'user.id', ts: 'when', features: 'x' } }),
  });

  it('takes key, ts and features from the mapped paths, and the message key when the key field is absent', async () => {
    const e = accepted(await mapped.decode('t', 0, record('{"user":{"id":"u1"},"when":5,"x":[1,2]}')));
    expect(e.event).toEqual({ key: 'u1', ts: 5, features: [1, 2] });
    const k = accepted(
      await mapped.decode('t', 0, record('{"when":5,"x":[1]}', { key: Buffer.from('from-message') })),
    );
    expect(k.event?.key).toBe('from-message');
  });

  it('maps id and reset when present, and reads $timestamp and $key', async () => {
    const decoder = new RecordDecoder({
      input: inputConfig({
        mapping: { key: '$key', ts: '$timestamp', features: 'x', id: 'meta.id', reset: 'fresh' },
      }),
    });
    const withBoth = accepted(
      await decoder.decode(
        't',
        0,
        record('{"x":[1],"meta":{"id":"e1"},"fresh":true}', {
          key: Buffer.from('k'),
          timestamp: '1700000000000',
        }),
      ),
    );
    expect(withBoth.event).toEqual({ key: 'k', ts: 1_700_000_000_000, features: [1], id: 'e1', reset: true });
    const without = accepted(
      await decoder.decode('t', 0, record('{"x":[1]}', { key: Buffer.from('k'), timestamp: '5' })),
    );
    expect(without.event).toEqual({ key: 'k', ts: 5, features: [1] });
    const badReset = rejected(
      await decoder.decode(
        't',
        0,
        record('{"x":[1],"fresh":"yes"}', { key: Buffer.from('k'), timestamp: '5' }),
      ),
    );
    expect(badReset.code).toBe('EVENT_INVALID');
  });

  it('dead-letters a record missing a mapped field (EVENT_FIELD_MISSING) or naming another key (EVENT_KEY_MISMATCH)', async () => {
    const noTs = rejected(await mapped.decode('t', 1, record('{"user":{"id":"u1"},"x":[1]}')));
    expect(noTs.code).toBe('EVENT_FIELD_MISSING');
    expect(noTs.reason).toMatch(/'when'.*ts/);
    expect(noTs.position).toEqual({ kind: 'offset', topic: 't', partition: 1, offset: '7' });
    const other = rejected(
      await mapped.decode(
        't',
        0,
        record('{"user":{"id":"u1"},"when":1,"x":[1]}', { key: Buffer.from('u2') }),
      ),
    );
    expect(other.code).toBe('EVENT_KEY_MISMATCH');
    expect(rejected(await mapped.decode('t', 0, record('{"user":'))).code).toBe('EVENT_UNDECODABLE');
    expect(rejected(await mapped.decode('t', 0, record(null))).code).toBe('EVENT_INVALID');
  });

  it("checks the engine's event limits at the edge: key and id length, ts too far ahead", async () => {
    const limits = { maxKeyBytes: 8, maxIdBytes: 4, maxTsAheadMs: 1000 };
    const now = 10_000;
    const at = async (json: string) => mapped.decode('t', 0, record(json), limits, now);
    expect(accepted(await at('{"user":{"id":"k"},"when":11000,"x":[1]}')).event?.key).toBe('k');
    expect(rejected(await at('{"user":{"id":"a-long-key"},"when":5,"x":[1]}')).code).toBe(
      'EVENT_KEY_TOO_LONG',
    );
    expect(rejected(await at('{"user":{"id":"k"},"when":11001,"x":[1]}')).code).toBe('EVENT_TS_IN_FUTURE');
    const withId = new RecordDecoder({
      input: inputConfig({ mapping: { key: 'k', ts: 'ts', features: 'x', id: 'id' } }),
    });
    const long = await withId.decode('t', 0, record('{"k":"k","ts":1,"x":[1],"id":"12345"}'), limits, now);
    expect(rejected(long).code).toBe('EVENT_ID_TOO_LONG');
    const all = await withId.decodeAll(
      't',
      0,
      [record('{"k":"k","ts":1,"x":[1],"id":"12345"}')],
      limits,
      now,
    );
    expect(rejected(all[0]).code).toBe('EVENT_ID_TOO_LONG');
  });

  it('reads binary-mode CloudEvents attributes from ce_ headers, and refuses a record without them when told binary', async () => {
    const decoder = new RecordDecoder({
      input: inputConfig({
        cloudEvents: 'binary',
        mapping: { key: '$ce.subject', ts: '$ce.time', values: ['spend'] },
      }),
    });
    const headers = { ce_specversion: Buffer.from('1.0'), ce_subject: 'c1', ce_time: '2024-01-01T00:00:00Z' };
    const e = accepted(await decoder.decode('t', 0, record('{"spend":3}', { headers })));
    expect(e.event).toEqual({ key: 'c1', ts: Date.parse('2024-01-01T00:00:00Z'), values: { spend: 3 } });
    expect(rejected(await decoder.decode('t', 0, record('{"spend":3}'))).code).toBe('EVENT_UNDECODABLE');
  });

  it('reads a structured CloudEvent (data or data_base64), and a plain record beside it in auto mode', async () => {
    const decoder = new RecordDecoder({
      input: inputConfig({ cloudEvents: 'auto', mapping: { key: '$ce.subject', ts: 'ts', features: 'f' } }),
    });
    const ct = { 'content-type': 'application/cloudevents+json' };
    const data = { ts: 2, f: [1] };
    const viaData = JSON.stringify({ specversion: '1.0', subject: 's', data });
    const viaBase64 = JSON.stringify({
      specversion: '1.0',
      subject: 's',
      data_base64: Buffer.from(JSON.stringify(data)).toString('base64'),
    });
    for (const v of [viaData, viaBase64]) {
      expect(accepted(await decoder.decode('t', 0, record(v, { headers: ct }))).event).toEqual({
        key: 's',
        ts: 2,
        features: [1],
      });
    }
    // No content type, no ce_ headers: a plain record, and $ce.subject is absent.
    const plain = rejected(await decoder.decode('t', 0, record(JSON.stringify(data))));
    expect(plain.code).toBe('EVENT_FIELD_MISSING');
    const noData = rejected(
      await decoder.decode('t', 0, record(JSON.stringify({ specversion: '1.0' }), { headers: ct })),
    );
    expect(noData.code).toBe('EVENT_UNDECODABLE');
  });

  it('throws REGISTRY_UNAVAILABLE, not a dead letter, when the registry does not answer', async () => {
    // A port nothing listens on: the record is fine, the registry is away, so the batch must fail.
    const decoder = new RecordDecoder({
      input: inputConfig({ format: 'avro' }),
      registry: new RegistryClient({ url: 'http://127.0.0.1:9/apis/ccompat/v7', retries: 0 }),
    });
    const err = await decoder
      .decode('t', 0, record(frame(1, Buffer.from([2, 0x61]))))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryUnavailableError);
    expect((err as RegistryUnavailableError).code).toBe('REGISTRY_UNAVAILABLE');
    expect((err as Error).message).toMatch(/127\.0\.0\.1:9.*schema id 1/);
    // No registry needed to see that a value is not in the wire format at all.
    expect(rejected(await decoder.decode('t', 0, record('{"a":1}'))).code).toBe('EVENT_UNDECODABLE');
  });

  it("needs a registry for the registry formats and a spec for values 'spec'", () => {
    expect(() => new RecordDecoder({ input: inputConfig({ format: 'avro' }) })).toThrow(
      /needs kafka.registry/,
    );
    expect(
      () => new RecordDecoder({ input: inputConfig({ mapping: { values: 'spec' } }), specValueNames: [] }),
    ).toThrow(/no feature spec/);
  });
});

describe('Protobuf message-index paths', () => {
  it('finds top-level messages in declaration order and nested ones below them', () => {
    const root = protobuf.parse(`syntax = "proto3"; package p;
      enum E { A = 0; }
      message First { string a = 1; }
      message Second { message Inner { string b = 1; } message Other { string c = 1; } string d = 1; }`).root;
    const first = root.lookupType('p.First');
    expect(protobufTypeAt(first, [0]).fullName).toBe('.p.First');
    expect(protobufTypeAt(first, [1]).fullName).toBe('.p.Second');
    expect(protobufTypeAt(first, [1, 1]).fullName).toBe('.p.Second.Other');
    expect(() => protobufTypeAt(first, [2])).toThrow(/names no message/);
  });
});

describe('prediction schemas and messages', () => {
  it('generates an Avro schema that carries every field of a decoded prediction', () => {
    const schema = predictionAvroSchema(outputConfig(), {
      outputs: 3,
      output: { kind: 'classes', labels: ['a', 'b', 'c'] },
    });
    const type = avro.Type.forSchema(schema as avro.Schema);
    const p = {
      key: 'k',
      ts: 1.5,
      seq: 2,
      model: 'm@1',
      output: [0.1, 0.7, 0.2],
      label: 'b',
      probabilities: { a: 0.1, b: 0.7, c: 0.2 },
    };
    expect(type.fromBuffer(type.toBuffer(p))).toEqual(p);
    expect(subjectName(outputConfig({ subjectNameStrategy: 'topic' }), 'preds')).toBe('preds-value');
    expect(subjectName(outputConfig({ subjectNameStrategy: 'record' }), 'preds')).toBe(
      'dev.cellstream.Prediction',
    );
    expect(subjectName(outputConfig({ subjectNameStrategy: 'topic-record', recordName: 'a.P' }), 'x')).toBe(
      'x-a.P',
    );
  });

  it('wraps JSON predictions as binary or structured CloudEvents with a stable id', async () => {
    const p = { key: 'k', ts: 0, seq: 3, model: 'm@1', output: [1] };
    const binary = await PredictionEncoder.create({
      output: outputConfig({ cloudEvents: 'binary' }),
      topic: 'out',
      shape: { outputs: 1 },
    });
    const b = binary.encode(p);
    expect(JSON.parse(b.value as string)).toEqual(p);
    expect(b.headers).toMatchObject({
      ce_specversion: '1.0',
      ce_id: 'm@1/k/3',
      ce_source: 'cellstream',
      ce_type: 'dev.cellstream.prediction',
      ce_subject: 'k',
      ce_time: '1970-01-01T00:00:00.000Z',
      'content-type': 'application/json',
    });
    const structured = await PredictionEncoder.create({
      output: outputConfig({ cloudEvents: 'structured' }),
      topic: 'out',
      shape: { outputs: 1 },
    });
    const s = structured.encode(p);
    expect(JSON.parse(s.value as string)).toMatchObject({ specversion: '1.0', id: 'm@1/k/3', data: p });
    await expect(
      PredictionEncoder.create({
        output: outputConfig({ format: 'avro' }),
        topic: 'o',
        shape: { outputs: 1 },
      }),
    ).rejects.toThrow(/needs kafka.registry/);
  });
});

describe('record format settings', () => {
  async function yamlFile(text: string): Promise<string> {
    const path = join(await tempDir('records'), 'formats.yaml');
    await writeFile(path, text);
    return path;
  }

  it("serve's kafka section takes input, output and registry, each filled in with its defaults", async () => {
    const base = 'kafka:\n  brokers: [127.0.0.1:9092]\n  inputTopic: e\n  outputTopic: p\n  groupId: g\n';
    const config = await loadConfig({
      file: await yamlFile(`${base}  input: {}\n  output: {cloudEvents: binary}\n`),
    });
    expect(config.kafka?.input).toEqual({ format: 'json', cloudEvents: 'off', protobufMessageIndexes: true });
    expect(config.kafka?.output).toMatchObject({ format: 'json', cloudEvents: 'binary', autoRegister: true });
    const noRegistry = loadConfig({
      file: await yamlFile(`sources: {websocket: {enabled: false}}\n${base}  input: {format: avro}\n`),
    });
    await expect(noRegistry).rejects.toThrow(/kafka.input.format avro needs the schema registry/);
    const withIngest = loadConfig({
      file: await yamlFile(`${base}  registry: {url: 'http://r:8081'}\n  input: {format: avro}\n`),
    });
    await expect(withIngest).rejects.toThrow(/forward JSON events/);
  });

  it('cellstream kafka --formats reads the same sections and names a bad key', async () => {
    const ok = await loadFormatsFile(
      await yamlFile(
        "registry: {url: 'http://127.0.0.1:8081'}\ninput: {format: avro, mapping: {key: customer, ts: at, values: spec}}\noutput: {format: avro}\n",
      ),
    );
    expect(ok.input).toMatchObject({
      format: 'avro',
      mapping: { key: 'customer', ts: 'at', values: 'spec' },
    });
    expect(ok.registry).toEqual({ url: 'http://127.0.0.1:8081', retries: 3 });
    const bad = loadFormatsFile(await yamlFile('input: {format: xml}\n'));
    await expect(bad).rejects.toBeInstanceOf(ConfigError);
    await expect(loadFormatsFile(await yamlFile('output: {format: avro}\n'))).rejects.toThrow(/registry.url/);
  });
});
