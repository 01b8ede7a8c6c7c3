import { FencedError } from '../errors.js';

/**
 * The Kafka protocol error type (`CONCURRENT_TRANSACTIONS`, …) of a client's error or of what it
 * wraps: kafkajs names it `type`, @platformatic/kafka `apiId` (inside an aggregate's `errors`).
 */
export function protocolErrorType(err: unknown, depth = 0): string | undefined {
  if (!err || typeof err !== 'object' || depth > 8) return undefined;
  const e = err as {
    type?: unknown;
    apiId?: unknown;
    errors?: unknown;
    cause?: unknown;
    originalError?: unknown;
  };
  if (typeof e.type === 'string') return e.type;
  if (typeof e.apiId === 'string') return e.apiId;
  if (Array.isArray(e.errors)) {
    for (const inner of e.errors) {
      const type = protocolErrorType(inner, depth + 1);
      if (type !== undefined) return type;
    }
  }
  return protocolErrorType(e.originalError ?? e.cause, depth + 1);
}

/**
 * A client's error as one line for a log: its message, with the protocol error type when the
 * message does not name it (@platformatic/kafka's aggregates say only "Producing messages failed.").
 */
export function kafkaErrorText(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const type = protocolErrorType(err);
  return type === undefined || message.includes(type) ? message : `${message} (${type})`;
}

const FENCED = new Set([
  'INVALID_PRODUCER_EPOCH',
  'PRODUCER_FENCED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
]);

/** `err` as a `FencedError` when Kafka says another producer owns the transactional id, else `err`. */
export function mapFenced(err: unknown, transactionalId: string): unknown {
  const type = protocolErrorType(err);
  if (type === undefined || !FENCED.has(type)) return err;
  return new FencedError(
    `transactional id '${transactionalId}' was taken over by another instance (${type})`,
    {
      cause: err,
    },
  );
}

/**
 * Runs `fn`, retrying while the transaction coordinator answers `CONCURRENT_TRANSACTIONS`: with
 * kafkajs 2.2.4 and Kafka 3.x, `sendOffsets` right after a commit sees the previous transaction still
 * completing and kafkajs does not retry it itself.
 */
export async function retryConcurrentTransactions<T>(fn: () => Promise<T>, attempts = 50): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (protocolErrorType(err) !== 'CONCURRENT_TRANSACTIONS' || attempt >= attempts) throw err;
      await new Promise((resolve) => setTimeout(resolve, Math.min(20 * attempt, 200)));
    }
  }
}
