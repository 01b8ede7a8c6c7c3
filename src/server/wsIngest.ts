import type { RawData, WebSocket } from 'ws';
import { EventError, KeyForbiddenError, MalformedJsonError } from '../errors.js';
import { validateEvent } from '../events/decode.js';
import { keyAllowed, type Principal } from './auth.js';
import { Fifo } from './fifo.js';
import type { IngestAnswer, IngestTarget } from './ingestTarget.js';
import { TokenBucket } from './tokenBucket.js';

/** WebSocket close codes the server uses (RFC 6455 §7.4.1). */
export const CLOSE = {
  goingAway: 1001,
  policy: 1008,
  tooBig: 1009,
  tryAgainLater: 1013,
} as const;

export interface IngestLimits {
  /** Sustained events per second per connection; a connection that exceeds it is closed with 1008. */
  readonly eventsPerSecond: number;
  /** Events a connection may send at once above the sustained rate. */
  readonly burst: number;
  /** Events read but not yet answered above which the connection stops being read. */
  readonly maxInFlight: number;
}

export interface IngestHooks {
  onEvents?(count: number): void;
  /** An event answered with an error record before reaching the engine. */
  onReject?(code: string): void;
  /** The server closed the connection, with this code. */
  onClose?(code: number): void;
}

/** One event's place in the connection's answer order; `text` is set once its answer is known. */
interface Slot {
  text: string | undefined;
}

/**
 * Serves one `/ingest` connection: each text frame holds an event or an array of events; every
 * event is answered on the socket, in the order sent, with its prediction (in Kafka mode: the
 * acknowledgement `{"accepted": true, "key", "topic", "partition", "offset"}`) or an error record
 * `{"error": {"code", "reason"}, "event": …}`. Backpressure: once `maxInFlight` events are
 * unanswered (waiting for the engine, or answered but not yet written to the socket because the
 * client reads slowly) the socket is paused, so the client's own TCP send blocks; it is resumed
 * when half have been written.
 */
export class IngestConnection {
  private readonly slots = new Fifo<Slot>();
  private readonly bucket: TokenBucket;
  /** Events read and not yet written out to the socket. */
  private unanswered = 0;
  private paused = false;
  private stopped = false;
  private closedByUs = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly principal: Principal,
    private readonly pipeline: IngestTarget,
    private readonly limits: IngestLimits,
    private readonly hooks: IngestHooks = {},
  ) {
    this.bucket = new TokenBucket(limits.eventsPerSecond, limits.burst);
    ws.on('message', (data, isBinary) => this.receive(data, isBinary));
  }

  /** Events of this connection not yet answered on the socket. */
  get pending(): number {
    return this.unanswered;
  }

  /** Stops reading new frames (graceful shutdown); frames already read are still answered. */
  stopReading(): void {
    this.stopped = true;
    this.ws.pause();
  }

  /**
   * Closes the connection after shutdown answered everything read. Reading resumes so the close
   * handshake can complete; a frame that slips in meanwhile is answered SERVER_UNAVAILABLE.
   */
  close(code: number, reason: string): void {
    this.ws.resume();
    this.ws.close(code, reason);
  }

  private receive(data: RawData, isBinary: boolean): void {
    if (this.closedByUs) return;
    const text = rawText(data);
    let items: unknown[];
    try {
      if (isBinary) throw new MalformedJsonError('binary frames are not accepted; send JSON text frames');
      const parsed: unknown = JSON.parse(text);
      items = Array.isArray(parsed) ? parsed : [parsed];
    } catch (err) {
      const error = err instanceof EventError ? err : new MalformedJsonError((err as Error).message);
      if (!this.admit(1)) return;
      const raw = text.length > 200 ? `${text.slice(0, 200)}…` : text;
      this.answerNow(error.code, errorRecord(error.code, error.message, { raw }));
      return;
    }
    if (items.length === 0 || !this.admit(items.length)) return;
    for (const item of items) this.accept(item);
    if (this.unanswered >= this.limits.maxInFlight && !this.paused) {
      this.paused = true;
      this.ws.pause();
    }
  }

  /** Spends rate-limit tokens for `count` events, or closes the connection (1008) when it is out of them. */
  private admit(count: number): boolean {
    this.hooks.onEvents?.(count);
    if (this.bucket.take(count)) return true;
    this.closedByUs = true;
    this.hooks.onClose?.(CLOSE.policy);
    this.ws.close(CLOSE.policy, `rate limit exceeded: at most ${this.limits.eventsPerSecond} events/s`);
    return false;
  }

  private accept(item: unknown): void {
    let event: ReturnType<typeof validateEvent>;
    try {
      event = validateEvent(item);
      if (!keyAllowed(this.principal, event.key))
        throw new KeyForbiddenError(event.key, this.principal.keyPrefix!);
    } catch (err) {
      if (!(err instanceof EventError)) throw err;
      this.answerNow(err.code, errorRecord(err.code, err.message, { event: item }));
      return;
    }
    const slot: Slot = { text: undefined };
    this.slots.push(slot);
    this.unanswered++;
    this.pipeline.submit(event, (result) => {
      slot.text = render(result, item);
      this.flush();
    });
  }

  private answerNow(code: string, text: string): void {
    this.hooks.onReject?.(code);
    this.slots.push({ text });
    this.unanswered++;
    this.flush();
  }

  /** Writes every answer that is known and has no unknown answer before it. */
  private flush(): void {
    for (let head = this.slots.peek(); head?.text !== undefined; head = this.slots.peek()) {
      this.slots.shift();
      if (this.ws.readyState !== this.ws.OPEN) {
        this.unanswered--;
        continue;
      }
      this.ws.send(head.text, () => this.written());
    }
  }

  private written(): void {
    this.unanswered--;
    if (this.paused && !this.stopped && !this.closedByUs && this.unanswered <= this.limits.maxInFlight / 2) {
      this.paused = false;
      this.ws.resume();
    }
  }
}

function render(result: IngestAnswer, event: unknown): string {
  switch (result.kind) {
    case 'accepted': {
      const { key, topic, partition, offset } = result;
      return JSON.stringify({ accepted: true, key, topic, partition, offset });
    }
    case 'prediction':
      return JSON.stringify(
        result.redelivered ? { ...result.prediction, redelivered: true } : result.prediction,
      );
    case 'rejected':
      return errorRecord(result.code, result.reason, { event });
    case 'duplicate':
      return JSON.stringify({ duplicate: { key: result.key, id: (event as { id?: unknown }).id } });
    case 'unavailable':
      return errorRecord(result.error.code, result.error.message, { event });
  }
}

function errorRecord(code: string, reason: string, context: { event: unknown } | { raw: string }): string {
  return JSON.stringify({ error: { code, reason }, ...context });
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  return Buffer.from(data).toString('utf8');
}
