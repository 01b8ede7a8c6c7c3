import { EventTooDeepError } from '../errors.js';

/**
 * Deepest nesting of arrays and objects an event's text may have, counted over the whole text (a
 * WebSocket array frame adds one level). An event needs 2 (its object and its feature array) or 3
 * (`inputs`); the limit leaves room for producers' extra fields while keeping every value cellstream
 * handles far from the depth at which a recursive serializer runs out of stack (a few thousand).
 */
export const DEFAULT_MAX_JSON_DEPTH = 32;

const OPEN_BRACKET = 0x5b; // [
const CLOSE_BRACKET = 0x5d; // ]
const OPEN_BRACE = 0x7b; // {
const CLOSE_BRACE = 0x7d; // }
const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \

/**
 * The deepest nesting of arrays and objects in JSON text, found in one linear pass that skips
 * string contents. It does not validate the text (JSON.parse does that afterwards); closing
 * brackets without an opening one count as nothing. With `stopAbove`, the scan ends as soon as the
 * depth exceeds it and returns `stopAbove + 1`, so a huge hostile text costs no more than needed.
 */
export function jsonDepth(text: string, stopAbove = Number.POSITIVE_INFINITY): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      depth++;
      if (depth > deepest) {
        deepest = depth;
        if (deepest > stopAbove) return deepest;
      }
    } else if ((c === CLOSE_BRACKET || c === CLOSE_BRACE) && depth > 0) depth--;
  }
  return deepest;
}

/**
 * Throws `EventTooDeepError` when `text` nests deeper than `limit`. Call it on raw event text
 * before `JSON.parse`, wherever such text comes in.
 */
export function checkJsonDepth(text: string, limit: number = DEFAULT_MAX_JSON_DEPTH): void {
  if (jsonDepth(text, limit) > limit) throw new EventTooDeepError(limit);
}
