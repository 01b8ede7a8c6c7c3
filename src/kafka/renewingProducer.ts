import type { KafkaProducer } from './adapter.js';

/**
 * An idempotent producer that starts a new producer session (a new producer id, sequence numbers
 * from 0) before the next send after a failed one.
 *
 * A failed send's outcome is unknown per partition: the broker may have appended some of its
 * partitions (a request over several partitions that failed on one, a response lost with the
 * broker). The client counts a partition's sequence numbers on only from an acknowledged send, so
 * after such a failure it sends the next batch with a sequence the broker has already seen, and
 * the broker refuses every later send to that partition (`OUT_OF_ORDER_SEQUENCE_NUMBER`) for as
 * long as the session lives: neither kafkajs 2.2.4 nor @platformatic/kafka 1.x starts a new one by
 * itself. A stream processor redelivers the failed batch anyway, so a fresh session loses nothing;
 * keeping the old one stalled the partition for good (seen after a broker restart under load).
 * @platformatic/kafka 2.12 (Node >= 22.22) does drop its producer id after a failed send and asks
 * for a new one before the next; the wrapper stays on it too, one adapter for both majors, at the
 * cost of a new client (one more connection) per failed send.
 */
export function renewingProducer(create: () => KafkaProducer): KafkaProducer {
  let current = create();
  /** The session whose send failed, until a new one is connected. */
  let failed: KafkaProducer | undefined;
  let renewal: Promise<KafkaProducer> | undefined;
  let closed = false;

  const renew = (): Promise<KafkaProducer> => {
    renewal ??= (async () => {
      const next = create();
      try {
        await next.connect();
      } catch (err) {
        await next.disconnect().catch(() => {});
        throw err;
      }
      const old = current;
      current = next;
      failed = undefined;
      if (closed) await next.disconnect().catch(() => {});
      // Sends still in flight on the old session fail, and are redelivered as any failed send.
      await old.disconnect().catch(() => {});
      return next;
    })().finally(() => {
      renewal = undefined;
    });
    return renewal;
  };

  return {
    connect: () => current.connect(),
    async disconnect() {
      closed = true;
      await renewal?.catch(() => {});
      await current.disconnect();
    },
    async sendBatch(messages) {
      const session = failed === current ? await renew() : current;
      try {
        return await session.sendBatch(messages);
      } catch (err) {
        if (session === current) failed = session;
        throw err;
      }
    },
  };
}
