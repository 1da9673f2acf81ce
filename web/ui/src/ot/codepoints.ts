// Offsets at the boundary between the editor and the wire. CodeMirror
// counts UTF-16 code units; the OT protocol counts Unicode code points
// ("💃123" is 5 units long and 4 points long). Everything here converts
// between the two over a text, without copying it whole.

import { type, type TextOp } from 'ot-text-unicode';

/** Read access to a text in UTF-16 units (a string, or an editor's document). */
export interface TextSource {
  readonly length: number;
  slice(from: number, to: number): string;
}

/** A replacement of [from, to) by insert, in UTF-16 units of the text before any change. */
export interface Change {
  from: number;
  to: number;
  insert: string;
}

export const stringSource = (s: string): TextSource => ({ length: s.length, slice: (a, b) => s.slice(a, b) });

const isHigh = (c: number): boolean => c >= 0xd800 && c <= 0xdbff;
const isLow = (c: number): boolean => c >= 0xdc00 && c <= 0xdfff;

/** countCodePoints counts the code points of s; a lone surrogate counts as one. */
export function countCodePoints(s: string): number {
  let n = s.length;
  for (let i = 0; i + 1 < s.length; i++) {
    if (isHigh(s.charCodeAt(i)) && isLow(s.charCodeAt(i + 1))) {
      n--;
      i++;
    }
  }
  return n;
}

/**
 * advance returns the UTF-16 offset that lies `points` code points after
 * the UTF-16 offset `from` in text. It throws when the text ends first.
 */
export function advance(text: TextSource, from: number, points: number): number {
  let pos = from;
  let left = points;
  while (left > 0) {
    // left points span at most 2*left units; read them (and one more, to
    // see the low half of a pair at the edge).
    const chunk = text.slice(pos, Math.min(text.length, pos + 2 * left + 1));
    if (chunk.length === 0) throw new RangeError(`offset ${points} code points past ${from} is past the end of the text`);
    let i = 0;
    while (left > 0 && i < chunk.length) {
      const pair = isHigh(chunk.charCodeAt(i)) && i + 1 < chunk.length && isLow(chunk.charCodeAt(i + 1));
      i += pair ? 2 : 1;
      left--;
    }
    pos += i;
  }
  return pos;
}

/** toUtf16 converts a code point offset into a UTF-16 offset of text. */
export function toUtf16(text: TextSource, points: number): number {
  return advance(text, 0, points);
}

/**
 * toCodePoints converts a UTF-16 offset of text into a code point offset.
 * An offset inside a surrogate pair counts the pair as before it.
 */
export function toCodePoints(text: TextSource, units: number): number {
  return countCodePoints(text.slice(0, units));
}

const splitsPair = (text: TextSource, at: number): boolean =>
  at > 0 && at < text.length && isHigh(text.slice(at - 1, at).charCodeAt(0)) && isLow(text.slice(at, at + 1).charCodeAt(0));

/** Lone surrogates, which no OT document can hold. */
const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * wholeCodePoints makes a change fit code point boundaries: a deletion
 * that cuts a surrogate pair takes the whole pair, an insertion inside a
 * pair moves after it, and a lone surrogate in the inserted text becomes
 * U+FFFD. The editor applies its changes through it, so that the editor's
 * text and the op always agree.
 */
export function wholeCodePoints(text: TextSource, c: Change): Change {
  let { from, to } = c;
  const insert = c.insert.replace(loneSurrogate, '\ufffd');
  if (from === to) {
    if (splitsPair(text, from)) from = to = from + 1;
  } else {
    if (splitsPair(text, from)) from--;
    if (splitsPair(text, to)) to++;
  }
  return { from, to, insert };
}

/**
 * changesToOp turns the editor's changes to text (ascending, not
 * overlapping, in UTF-16 units of text as it was before them) into one op
 * in code points, in normal form.
 */
export function changesToOp(text: TextSource, changes: readonly Change[]): TextOp {
  const op: TextOp = [];
  let pos = 0;
  for (const raw of changes) {
    const c = wholeCodePoints(text, raw);
    const from = Math.max(c.from, pos);
    if (from > pos) op.push(countCodePoints(text.slice(pos, from)));
    if (c.to > from) op.push({ d: countCodePoints(text.slice(from, c.to)) });
    if (c.insert) op.push(c.insert);
    pos = Math.max(pos, c.to);
  }
  return type.normalize(op);
}

/**
 * opToChanges turns an op in code points into changes to text in UTF-16
 * units, all relative to text as it is before the op (as CodeMirror takes
 * them). It throws when the op does not fit the text.
 */
export function opToChanges(text: TextSource, op: TextOp): Change[] {
  const changes: Change[] = [];
  let pos = 0;
  for (const c of op) {
    if (typeof c === 'number') {
      pos = advance(text, pos, c);
    } else if (typeof c === 'string') {
      changes.push({ from: pos, to: pos, insert: c });
    } else {
      const n = typeof c.d === 'number' ? c.d : countCodePoints(c.d);
      const end = advance(text, pos, n);
      changes.push({ from: pos, to: end, insert: '' });
      pos = end;
    }
  }
  return changes;
}
