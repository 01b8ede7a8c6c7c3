import type { WebSocket } from 'ws';
import type { Prediction } from '../events/types.js';
import { keyAllowed, type Principal } from './auth.js';
import { CLOSE } from './wsIngest.js';

/** Which predictions a subscriber asked for: given keys, a key prefix, or (neither) all. */
export interface SubscriptionFilter {
  readonly keys?: ReadonlySet<string> | undefined;
  readonly prefix?: string | undefined;
  /**
   * A model's name or prediction label: every prediction that model makes, as primary or shadow.
   * Absent: the predictions that answer events (the primary's), and never a shadow's.
   */
  readonly model?: string | undefined;
}

/** Which model made a published prediction, and whether it answered the event. */
export interface PredictionSource {
  readonly model: string;
  readonly primary: boolean;
}

export interface SubscriptionOptions {
  /** Bytes that may wait in a subscriber's socket buffer before the slow policy applies. */
  readonly maxBufferedBytes: number;
  /** `drop`: skip predictions while over the limit and send `{"dropped": n}` when caught up; `close`: close with 1013. */
  readonly onSlow: 'drop' | 'close';
  readonly onDropped?: (count: number) => void;
  readonly onSlowClosed?: () => void;
}

interface Subscriber {
  readonly ws: WebSocket;
  readonly principal: Principal;
  readonly filter: SubscriptionFilter;
  dropped: number;
  /** Largest `bufferedAmount` seen right after a send, for the memory figure. */
  peakBuffered: number;
}

/** Reads the filter from `/subscribe?key=a&key=b`, `?prefix=cust-` and `?model=NAME`. */
export function filterFromQuery(params: URLSearchParams): SubscriptionFilter {
  const keys = params.getAll('key').filter((k) => k.length > 0);
  const prefix = params.get('prefix') ?? undefined;
  const model = params.get('model') ?? undefined;
  return {
    ...(keys.length > 0 ? { keys: new Set(keys) } : {}),
    ...(prefix ? { prefix } : {}),
    ...(model ? { model } : {}),
  };
}

/**
 * Fans predictions out to `/subscribe` connections. A subscriber sees a prediction only if its
 * filter and its token's key prefix both allow the key. Each prediction is serialized once. A
 * subscriber that reads slower than predictions arrive never holds more than about
 * `maxBufferedBytes` of the server's memory: past that its predictions are dropped (and counted) or
 * it is closed; the others are not held up, since sends never wait.
 */
export class SubscriptionHub {
  private readonly subscribers = new Set<Subscriber>();
  private readonly lagging = new Set<Subscriber>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: SubscriptionOptions) {}

  get size(): number {
    return this.subscribers.size;
  }

  /** Largest socket buffer any subscriber had, in bytes, since it connected (closed ones forgotten). */
  peakBufferedBytes(): number {
    let peak = 0;
    for (const s of this.subscribers) peak = Math.max(peak, s.peakBuffered);
    return peak;
  }

  add(ws: WebSocket, principal: Principal, filter: SubscriptionFilter): void {
    const subscriber: Subscriber = { ws, principal, filter, dropped: 0, peakBuffered: 0 };
    this.subscribers.add(subscriber);
    ws.on('close', () => {
      this.subscribers.delete(subscriber);
      this.lagging.delete(subscriber);
    });
    // Subscribers have nothing to say; reading (and discarding) keeps their frames from piling up.
    ws.on('message', () => {});
  }

  /** Sends `prediction` to the subscribers that want it; without `source`, it answered its event. */
  publish(prediction: Prediction, source?: PredictionSource): void {
    let text: string | undefined;
    for (const s of this.subscribers) {
      if (!this.wants(s, prediction.key)) continue;
      if (!this.wantsModel(s, prediction, source)) continue;
      text ??= JSON.stringify(prediction);
      this.send(s, text);
    }
  }

  /** Closes every subscriber with `code`. */
  closeAll(code: number, reason: string): void {
    for (const s of this.subscribers) s.ws.close(code, reason);
    if (this.timer) clearInterval(this.timer);
  }

  private wants(s: Subscriber, key: string): boolean {
    if (!keyAllowed(s.principal, key)) return false;
    if (s.filter.keys && !s.filter.keys.has(key)) return false;
    if (s.filter.prefix !== undefined && !key.startsWith(s.filter.prefix)) return false;
    return true;
  }

  private wantsModel(s: Subscriber, prediction: Prediction, source: PredictionSource | undefined): boolean {
    const model = s.filter.model;
    if (model === undefined) return source === undefined || source.primary;
    return model === prediction.model || model === source?.model;
  }

  private send(s: Subscriber, text: string): void {
    if (s.ws.readyState !== s.ws.OPEN) return;
    const max = this.options.maxBufferedBytes;
    if (s.ws.bufferedAmount + text.length > max) {
      if (this.options.onSlow === 'close') {
        this.options.onSlowClosed?.();
        this.subscribers.delete(s);
        s.ws.close(CLOSE.tryAgainLater, 'subscriber too slow: its buffer is full');
        return;
      }
      s.dropped++;
      this.options.onDropped?.(1);
      this.watch(s);
      return;
    }
    if (s.dropped > 0) this.sendDroppedNotice(s);
    s.ws.send(text);
    s.peakBuffered = Math.max(s.peakBuffered, s.ws.bufferedAmount);
  }

  private sendDroppedNotice(s: Subscriber): void {
    s.ws.send(JSON.stringify({ dropped: s.dropped }));
    s.dropped = 0;
    this.lagging.delete(s);
  }

  /**
   * A lagging subscriber hears how many predictions it missed once its buffer has drained, even if
   * no new prediction for it comes along to carry the notice.
   */
  private watch(s: Subscriber): void {
    this.lagging.add(s);
    if (this.timer) return;
    this.timer = setInterval(() => {
      for (const l of this.lagging) {
        if (l.ws.readyState !== l.ws.OPEN) this.lagging.delete(l);
        else if (l.ws.bufferedAmount < this.options.maxBufferedBytes / 2) this.sendDroppedNotice(l);
      }
      if (this.lagging.size === 0) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    }, 100);
    this.timer.unref();
  }
}
