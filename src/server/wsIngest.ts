import type { RawData, WebSocket } from 'ws';
import { EventError, KeyForbiddenError, MalformedJsonError } from '../errors.js';
import { admitEvent } from '../events/decode.js';
import { checkJsonDepth } from '../events/jsonDepth.js';
import { DECODE_CEILINGS, type EventLimits } from '../events/limits.js';
import { keyAllowed, type Principal } from './auth.js';
import { Fifo } from './fifo.js';
import type { IngestAnswer, IngestTarget } from './ingestTarget.js';
import { TokenBucket } from './tokenBucket.js';

/** WebSocket close codes the server uses (RFC 6455 §7.4.1). */
export const CLOSE = {
  goingAway: 1001,
  policy: 1008,
  tooBig: 1009,
  internalError: 1011,
  tryAgainLater: 1013,
} as const;

export interface IngestLimits {
  /** Sustained events per second per connection; a connection that exceeds it is closed with 1008. */
  readonly eventsPerSecond: number;
  /** Events a connection may send at once above the sustained rate. */
  readonly burst: number;
  /** Events read but not yet answered above which the connection stops being read. */
  readonly maxInFlight: number;
  /** Deepest nesting of arrays and objects in a frame; deeper frames are answered EVENT_TOO_DEEP unparsed. */
  readonly maxJsonDepth: number;
  /**
   * Answer bytes that may wait in the connection's socket buffer (`bufferedAmount`). Above it the
   * connection's events are not processed and its socket is not read until the buffer has drained
   * below half, so a client that does not read its answers holds a bounded amount of memory.
   */
  readonly maxOutboundBytes: number;
  /** A rejected event is echoed whole when its JSON is at most this long, else as a prefix (`raw`). */
  readonly maxEchoBytes: number;
  /**
   * The engine's event limits (`events.*`), checked before an event is submitted, so one beyond
   * them is answered at once with the engine's code. Default: only what no store can hold.
   */
  readonly events?: EventLimits;
}

export interface IngestHooks {
  onEvents?(count: number): void;
  /** An event answered with an error record before reaching the engine. */
  onReject?(code: string): void;
  /** The server closed the connection, with this code. */
  onClose?(code: number): void;
  /** An unexpected exception while serving this connection; the connection was closed with 1011. */
  onError?(err: unknown): void;
}

/** One event's place in the connection's answer order; `text` is set once its answer is known. */
interface Slot {
  text: string | undefined;
}

/** Characters of a rejected frame (or of an over-long rejected event) echoed back in `raw`. */
const RAW_ECHO_CHARS = 200;
/** Characters of an error's reason in an answer; reasons may quote a key, which may be long. */
const MAX_REASON_CHARS = 512;

/**
 * Serves one `/ingest` connection: each text frame holds an event or an array of events; every
 * event is answered on the socket, in the order sent, with its prediction (in Kafka mode: the
 * acknowledgement `{"accepted": true, "key", "topic", "partition", "offset"}`) or an error record
 * `{"error": {"code", "reason"}, "event": …}` (`"raw": "…"` in place of `event` when the frame
 * was not JSON or the event is long). Backpressure, so that the memory one connection holds is
 * bounded whatever its client does: the socket is paused while `maxInFlight` events are
 * unanswered (waiting for the engine, or answered but not yet written), or while more than
 * `maxOutboundBytes` of answers wait to be written because the client does not read them. Events
 * of a frame already read then wait, unprocessed, until the buffer has drained below half. The
 * client's own TCP send blocks meanwhile; nothing is rejected.
 */
export class IngestConnection {
  private readonly slots = new Fifo<Slot>();
  /** Events read from frames but not yet checked and submitted (waiting for the buffer to drain). */
  private readonly queue = new Fifo<unknown>();
  private readonly bucket: TokenBucket;
  /** Events read and not yet written out to the socket, queued ones excluded. */
  private unanswered = 0;
  /** Answers handed to the socket whose write has not completed. */
  private inSocket = 0;
  private paused = false;
  private stopped = false;
  private closedByUs = false;
  /** A flush is queued for the end of this turn (see `flushSoon`). */
  private flushQueued = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly principal: Principal,
    private readonly pipeline: IngestTarget,
    private readonly limits: IngestLimits,
    private readonly hooks: IngestHooks = {},
  ) {
    this.bucket = new TokenBucket(limits.eventsPerSecond, limits.burst);
    ws.on('message', (data, isBinary) => this.guard(() => this.receive(data, isBinary)));
    // Events still queued when the client goes can no longer be answered.
    ws.on('close', () => this.queue.drain());
  }

  /** Events of this connection not yet answered on the socket. */
  get pending(): number {
    return this.unanswered + this.queue.length;
  }

  /** Bytes of answers waiting in this connection's socket buffer. */
  get bufferedBytes(): number {
    return this.ws.bufferedAmount;
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

  /**
   * Runs a handler so that an exception nobody expected ends this connection only (1011, reported
   * to `onError`), never the process or another client's work.
   */
  private guard(work: () => void): void {
    try {
      work();
    } catch (err) {
      if (this.closedByUs) return;
      this.closedByUs = true;
      this.hooks.onError?.(err);
      this.hooks.onClose?.(CLOSE.internalError);
      this.ws.close(CLOSE.internalError, 'internal error');
    }
  }

  private receive(data: RawData, isBinary: boolean): void {
    if (this.closedByUs) return;
    const text = rawText(data);
    let items: unknown[];
    try {
      if (isBinary) throw new MalformedJsonError('binary frames are not accepted; send JSON text frames');
      // Before parsing: nothing may ever recurse over a value deeper than the limit.
      checkJsonDepth(text, this.limits.maxJsonDepth);
      const parsed: unknown = JSON.parse(text);
      items = Array.isArray(parsed) ? parsed : [parsed];
    } catch (err) {
      const error = err instanceof EventError ? err : new MalformedJsonError((err as Error).message);
      if (!this.admit(1)) return;
      this.answerNow(error.code, errorRecord(error.code, error.message, { raw: prefix(text) }));
      this.backpressure();
      return;
    }
    if (items.length === 0 || !this.admit(items.length)) return;
    for (const item of items) this.queue.push(item);
    this.pump();
  }

  /** Checks and submits queued events while the socket buffer has room, then applies backpressure. */
  private pump(): void {
    while (this.queue.length > 0 && !this.outboundFull()) this.accept(this.queue.shift());
    this.backpressure();
  }

  private outboundFull(): boolean {
    return this.ws.bufferedAmount > this.limits.maxOutboundBytes;
  }

  private backpressure(): void {
    if (this.paused) return;
    if (this.queue.length > 0 || this.unanswered >= this.limits.maxInFlight || this.outboundFull()) {
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
    let event: ReturnType<typeof admitEvent>;
    try {
      event = admitEvent(item, this.limits.events ?? DECODE_CEILINGS, Date.now());
      if (!keyAllowed(this.principal, event.key))
        throw new KeyForbiddenError(event.key, this.principal.keyPrefix!);
    } catch (err) {
      if (!(err instanceof EventError)) throw err;
      this.answerNow(err.code, errorRecord(err.code, err.message, this.echo(item)));
      return;
    }
    const slot: Slot = { text: undefined };
    this.slots.push(slot);
    this.unanswered++;
    this.pipeline.submit(event, (result) =>
      this.guard(() => {
        slot.text = render(result, item, (v) => this.echo(v));
        this.flushSoon();
      }),
    );
  }

  /** The rejected event itself when short, else the start of its JSON; never an unbounded copy. */
  private echo(item: unknown): { event: unknown } | { raw: string } {
    // Safe to serialize: the frame passed the depth limit, and its size is bounded by maxPayload.
    const text = JSON.stringify(item) ?? String(item);
    return text.length <= this.limits.maxEchoBytes ? { event: item } : { raw: prefix(text) };
  }

  private answerNow(code: string, text: string): void {
    this.hooks.onReject?.(code);
    this.slots.push({ text });
    this.unanswered++;
    // At once, not at the end of the turn: the pump stops taking a frame's events as soon as the
    // outbound buffer is full, which it can only see if the answers before are in it.
    this.flush();
  }

  /**
   * Flushes once the current turn is over. The engine answers a whole batch in one turn, so the
   * answers of a batch that are this connection's go out in one write rather than one each.
   */
  private flushSoon(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() =>
      this.guard(() => {
        this.flushQueued = false;
        this.flush();
      }),
    );
  }

  /**
   * Writes every answer that is known and has no unknown answer before it: each its own message,
   * all of them in one socket write (`corked`), with one completion callback for the lot (writes
   * complete in order, so the last one's says all are done).
   */
  private flush(): void {
    const texts: string[] = [];
    for (let head = this.slots.peek(); head?.text !== undefined; head = this.slots.peek()) {
      this.slots.shift();
      if (this.ws.readyState === this.ws.OPEN) texts.push(head.text);
      else this.unanswered--;
    }
    const count = texts.length;
    if (count === 0) return;
    this.inSocket += count;
    corked(this.ws, () => {
      for (let i = 0; i < count - 1; i++) this.ws.send(texts[i]);
      this.ws.send(texts[count - 1], () => this.guard(() => this.written(count)));
    });
  }

  private written(count: number): void {
    this.unanswered -= count;
    this.inSocket -= count;
    const drained = this.inSocket === 0 || this.ws.bufferedAmount <= this.limits.maxOutboundBytes / 2;
    if (!drained) return;
    if (this.queue.length > 0) {
      if (this.ws.readyState === this.ws.OPEN) this.pump();
      else this.queue.drain();
    }
    if (
      this.paused &&
      !this.stopped &&
      !this.closedByUs &&
      this.queue.length === 0 &&
      this.unanswered <= this.limits.maxInFlight / 2
    ) {
      this.paused = false;
      this.ws.resume();
    }
  }
}

type Echo = (event: unknown) => { event: unknown } | { raw: string };

function render(result: IngestAnswer, event: unknown, echo: Echo): string {
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
      return errorRecord(result.code, result.reason, echo(event));
    case 'duplicate':
      return JSON.stringify({ duplicate: { key: result.key, id: (event as { id?: unknown }).id } });
    case 'unavailable':
      return errorRecord(result.error.code, result.error.message, echo(event));
  }
}

function errorRecord(code: string, reason: string, context: { event: unknown } | { raw: string }): string {
  const bounded = reason.length > MAX_REASON_CHARS ? `${reason.slice(0, MAX_REASON_CHARS)}…` : reason;
  return JSON.stringify({ error: { code, reason: bounded }, ...context });
}

function prefix(text: string): string {
  return text.length > RAW_ECHO_CHARS ? `${text.slice(0, RAW_ECHO_CHARS)}…` : text;
}

/**
 * Runs `write` with the connection's TCP socket corked, so the frames it sends leave in one
 * `writev` instead of one system call each (ws corks and uncorks around every frame it sends,
 * which alone cannot merge them). ws keeps its socket in `_socket`; without one, writes go as
 * they are.
 */
function corked(ws: WebSocket, write: () => void): void {
  const socket = (ws as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
  socket?.cork();
  try {
    write();
  } finally {
    socket?.uncork();
  }
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  return Buffer.from(data).toString('utf8');
}
