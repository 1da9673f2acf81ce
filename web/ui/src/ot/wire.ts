// Ops between ot-text-unicode's form ([3, {d: 1}, "x"]) and the wire's
// components ({skip}, {delete}, {insert}).

import type { api } from '@replit/protocol';
import type { TextOp, TextOpComponent } from 'ot-text-unicode';

/** fromWire converts wire components; an empty component is an error. */
export function fromWire(comps: readonly api.IOTOpComponent[] | null | undefined): TextOp {
  return (comps ?? []).map((c): TextOpComponent => {
    if (c.skip) return c.skip;
    if (c.delete) return { d: c.delete };
    if (c.insert) return c.insert;
    throw new Error('an op component with nothing in it');
  });
}

export function toWire(op: TextOp): api.IOTOpComponent[] {
  return op.map((c) => {
    if (typeof c === 'number') return { skip: c };
    if (typeof c === 'string') return { insert: c };
    return { delete: typeof c.d === 'number' ? c.d : [...c.d].length };
  });
}

/** copy copies an op: ot-text-unicode changes delete components in place in normalize and compose. */
export function copy(op: TextOp): TextOp {
  return op.map((c) => (typeof c === 'object' ? { d: c.d } : c));
}

/** sameOp compares two ops component by component. */
export function sameOp(a: TextOp, b: TextOp): boolean {
  if (a.length !== b.length) return false;
  return a.every((c, i) => {
    const d = b[i];
    if (typeof c === 'object' && typeof d === 'object') {
      const n = (x: number | string) => (typeof x === 'number' ? x : [...x].length);
      return n(c.d) === n(d.d);
    }
    return c === d;
  });
}
