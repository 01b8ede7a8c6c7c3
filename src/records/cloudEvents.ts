import type { MessageHeaders } from '../kafka/adapter.js';

/** CloudEvents context attributes (specversion, id, source, type, time, subject, extensions) as text. */
export type CloudEventAttributes = Readonly<Record<string, string>>;

/** A header's value as text (the first, when repeated); undefined when absent. */
export function headerText(headers: MessageHeaders | undefined, name: string): string | undefined {
  const v = headers?.[name];
  const first = Array.isArray(v) ? v[0] : v;
  return first === undefined ? undefined : Buffer.isBuffer(first) ? first.toString('utf8') : String(first);
}

/** The Kafka binding's structured mode announces itself in the content-type header. */
export function isStructuredCloudEvent(headers: MessageHeaders | undefined): boolean {
  const ct = headerText(headers, 'content-type') ?? headerText(headers, 'content_type');
  return ct?.toLowerCase().startsWith('application/cloudevents+json') === true;
}

/** Binary mode: every `ce_<name>` header is an attribute; undefined when there is no `ce_specversion`. */
export function ceAttributesFromHeaders(
  headers: MessageHeaders | undefined,
): CloudEventAttributes | undefined {
  if (!headers || headerText(headers, 'ce_specversion') === undefined) return undefined;
  const ce: Record<string, string> = {};
  for (const name of Object.keys(headers)) {
    if (!name.startsWith('ce_')) continue;
    const v = headerText(headers, name);
    if (v !== undefined) ce[name.slice(3)] = v;
  }
  return ce;
}

/** Binary-mode headers for an outgoing event. */
export function ceHeaders(attributes: CloudEventAttributes, contentType: string): Record<string, string> {
  const h: Record<string, string> = { 'content-type': contentType };
  for (const [k, v] of Object.entries(attributes)) h[`ce_${k}`] = v;
  return h;
}
