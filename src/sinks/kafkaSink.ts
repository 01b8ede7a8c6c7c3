import type { Rejected } from '../engine/types.js';
import type { Prediction } from '../events/types.js';
import type { KafkaSender, OutgoingMessage, TopicMessages } from '../kafka/adapter.js';
import { chunkMessages } from '../kafka/messageChunks.js';

/** Header names of a dead-letter message; the value is the event's text exactly as received. */
export const DEAD_LETTER_HEADERS = {
  reason: 'cellstream.reason',
  code: 'cellstream.code',
  topic: 'cellstream.topic',
  partition: 'cellstream.partition',
  offset: 'cellstream.offset',
} as const;

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
      for (const chunk of chunkMessages(messages)) {
        await sender.sendBatch({ topicMessages: [{ topic, messages: chunk }], acks: -1 });
      }
    }
  }
}
