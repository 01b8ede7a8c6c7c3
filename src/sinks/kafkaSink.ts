import type { Rejected } from '../engine/types.js';
import type { Prediction } from '../events/types.js';
import type { KafkaSender, OutgoingMessage, TopicMessages } from '../kafka/adapter.js';
import { protocolErrorType } from '../kafka/kafkaErrors.js';
import { chunkMessages } from '../kafka/messageChunks.js';

/** Header names of a dead-letter message; the value is the event's text exactly as received. */
export const DEAD_LETTER_HEADERS = {
  reason: 'cellstream.reason',
  code: 'cellstream.code',
  topic: 'cellstream.topic',
  partition: 'cellstream.partition',
  offset: 'cellstream.offset',
  /**
   * Set when the dead-letter topic refused the record as too large: what was left out and its
   * bytes, `value=N` (and `,key=N` for a key over 1 KiB).
   */
  dropped: 'cellstream.dropped',
} as const;

/**
 * Dead letters are sent in requests of at most this many estimated bytes, so that one larger than
 * that goes alone: a request the broker refuses as too large then holds one record and was not
 * applied in part, and that record is sent again without its value.
 */
export const DEAD_LETTER_CHUNK_BYTES = 64 * 1024;

/** A prediction as a Kafka message keyed by its entity key. */
export function predictionMessage(prediction: Prediction): OutgoingMessage {
  return { key: prediction.key, value: JSON.stringify(prediction) };
}

/**
 * A rejection as a dead-letter message: the original key (when the message had one) and value,
 * and why and where from in headers.
 */
export function deadLetterMessage(
  rejected: Rejected,
  key: Buffer | null = null,
  value: Buffer | null = null,
): OutgoingMessage {
  const headers: Record<string, string> = {
    [DEAD_LETTER_HEADERS.reason]: rejected.reason,
    [DEAD_LETTER_HEADERS.code]: rejected.code,
  };
  const where = rejected.position;
  if (where.kind === 'offset') {
    headers[DEAD_LETTER_HEADERS.topic] = where.topic;
    headers[DEAD_LETTER_HEADERS.partition] = String(where.partition);
    headers[DEAD_LETTER_HEADERS.offset] = where.offset;
  }
  return { key, value: value ?? rejected.raw, headers };
}

export interface KafkaSinkOptions {
  readonly outputTopic: string;
  readonly deadLetterTopic: string;
  /** How a prediction becomes a message (src/records: Avro, JSON Schema, CloudEvents); default JSON text. */
  readonly encodePrediction?: (prediction: Prediction) => OutgoingMessage;
}

/** What one batch of outcomes sends. */
export interface SinkBatch {
  readonly predictions: readonly Prediction[];
  readonly rejected: readonly Rejected[];
  /** Original message key of a rejected event, by offset, for its dead letter. */
  readonly keyOf?: (rejected: Rejected) => Buffer | null;
  /** Original message value of a rejected event (binary formats), for its dead letter. */
  readonly originalOf?: (rejected: Rejected) => Buffer | null;
}

/**
 * Writes predictions to the output topic and rejections to the dead-letter topic through a
 * producer (idempotent, all in-sync replicas acknowledging) or a transaction, in as many
 * `sendBatch` calls as the broker's size limit needs. Resolves once Kafka has acknowledged every message.
 */
export class KafkaSink {
  /**
   * Where the dead letters the dead-letter topic refused as too large came from (topic, partition,
   * offset), so that a redelivered batch sends them without their value at once. Needed when the
   * client cannot go on in a transaction after a refused send (@platformatic/kafka 2.x: the retry
   * fails, the batch with it, and would again on every redelivery); the oldest is forgotten past
   * REFUSED_DEAD_LETTERS_KEPT.
   */
  private readonly refusedAsTooLarge = new Set<string>();

  constructor(private readonly options: KafkaSinkOptions) {}

  topicMessages(batch: SinkBatch): TopicMessages[] {
    const out: TopicMessages[] = [];
    if (batch.predictions.length > 0) {
      out.push({
        topic: this.options.outputTopic,
        messages: batch.predictions.map(this.options.encodePrediction ?? predictionMessage),
      });
    }
    if (batch.rejected.length > 0) {
      out.push({
        topic: this.options.deadLetterTopic,
        messages: batch.rejected.map((r) =>
          deadLetterMessage(r, batch.keyOf?.(r) ?? null, batch.originalOf?.(r) ?? null),
        ),
      });
    }
    return out;
  }

  /** Sends in parts under the broker's size limit, one after another so per-partition order holds. */
  async send(sender: KafkaSender, batch: SinkBatch): Promise<void> {
    for (const { topic, messages } of this.topicMessages(batch)) {
      if (topic === this.options.deadLetterTopic) {
        for (const chunk of chunkMessages(messages, DEAD_LETTER_CHUNK_BYTES)) {
          await sendDeadLetters(sender, topic, chunk, this.refusedAsTooLarge);
        }
        continue;
      }
      for (const chunk of chunkMessages(messages)) {
        await sender.sendBatch({ topicMessages: [{ topic, messages: chunk }], acks: -1 });
      }
    }
  }
}

const TOO_LARGE = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE']);

/** A dead letter's key longer than this is left out with its value when the record is refused as too large. */
const DROPPED_KEY_BYTES = 1024;

/** How many refused dead letters a sink remembers (KafkaSink's `refusedAsTooLarge`). */
export const REFUSED_DEAD_LETTERS_KEPT = 1024;

/** Where a dead letter's record came from, if its headers say (records with an offset). */
function deadLetterOrigin(m: OutgoingMessage): string | undefined {
  const h = m.headers ?? {};
  const [topic, partition, offset] = [
    h[DEAD_LETTER_HEADERS.topic],
    h[DEAD_LETTER_HEADERS.partition],
    h[DEAD_LETTER_HEADERS.offset],
  ];
  return topic === undefined || partition === undefined || offset === undefined
    ? undefined
    : `${topic.toString()}/${partition.toString()}/${offset.toString()}`;
}

/** The dead letter without its value (and a key over DROPPED_KEY_BYTES), marked `cellstream.dropped`. */
function withoutValue(m: OutgoingMessage): OutgoingMessage {
  const keyBytes = m.key === null || m.key === undefined ? 0 : Buffer.byteLength(m.key);
  const dropKey = keyBytes > DROPPED_KEY_BYTES;
  const dropped = `value=${m.value === null ? 0 : Buffer.byteLength(m.value)}${dropKey ? `,key=${keyBytes}` : ''}`;
  return {
    key: dropKey ? null : (m.key ?? null),
    value: null,
    headers: { ...m.headers, [DEAD_LETTER_HEADERS.dropped]: dropped },
  };
}

/**
 * A dead letter larger than the dead-letter topic takes (its `max.message.bytes`) is sent without
 * its value (and a long key), which `cellstream.dropped` records; its headers still say where the
 * original is. Sending it as it is would fail the batch on every redelivery: its partition would never move
 * on, and any writer of the input topic could stop it with one record just under the input
 * topic's limit (a dead letter adds headers). One refused before (`refused`) goes without its value
 * at once.
 */
async function sendDeadLetters(
  sender: KafkaSender,
  topic: string,
  chunk: OutgoingMessage[],
  refused: Set<string>,
): Promise<void> {
  const origin = chunk.length === 1 ? deadLetterOrigin(chunk[0]) : undefined;
  if (origin !== undefined && refused.has(origin)) {
    await sender.sendBatch({ topicMessages: [{ topic, messages: [withoutValue(chunk[0])] }], acks: -1 });
    return;
  }
  try {
    await sender.sendBatch({ topicMessages: [{ topic, messages: chunk }], acks: -1 });
  } catch (err) {
    if (chunk.length > 1 || !TOO_LARGE.has(protocolErrorType(err) ?? '')) throw err;
    if (origin !== undefined) {
      refused.add(origin);
      if (refused.size > REFUSED_DEAD_LETTERS_KEPT) refused.delete(refused.values().next().value as string);
    }
    await sender.sendBatch({ topicMessages: [{ topic, messages: [withoutValue(chunk[0])] }], acks: -1 });
  }
}
