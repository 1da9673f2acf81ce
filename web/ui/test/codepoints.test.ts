import { describe, expect, it } from 'vitest';
import { type } from 'ot-text-unicode';
import {
  advance,
  changesToOp,
  countCodePoints,
  opToChanges,
  stringSource,
  toCodePoints,
  toUtf16,
  wholeCodePoints,
  type Change,
} from '../src/ot/codepoints';
import { crc32Text } from '../src/ot/crc32';
import { rng } from './rng';

const applyChanges = (text: string, changes: Change[]): string => {
  let out = '';
  let pos = 0;
  for (const c of changes) {
    out += text.slice(pos, c.from) + c.insert;
    pos = c.to;
  }
  return out + text.slice(pos);
};

describe('code points and UTF-16 units', () => {
  it('counts code points, not units', () => {
    expect(countCodePoints('💃123')).toBe(4);
    expect('💃123'.length).toBe(5);
    expect(countCodePoints('')).toBe(0);
    expect(countCodePoints('日本')).toBe(2);
    expect(countCodePoints('a\u{1F47B}\u{1F916}b')).toBe(4);
    expect(countCodePoints('\u{1D518}')).toBe(1); // mathematical fraktur, astral
    expect(countCodePoints('\ud83d')).toBe(1); // a lone surrogate is one
    expect(countCodePoints('👩‍💻')).toBe(3); // a ZWJ sequence is three code points
  });

  it('converts offsets both ways', () => {
    const text = stringSource('a💃b🤖👻c\n日本');
    const cases: [number, number][] = [
      [0, 0],
      [1, 1],
      [2, 3],
      [3, 4],
      [4, 6],
      [5, 8],
      [6, 9],
      [7, 10],
      [9, 12],
    ];
    for (const [cp, units] of cases) {
      expect(toUtf16(text, cp)).toBe(units);
      expect(toCodePoints(text, units)).toBe(cp);
    }
    expect(() => toUtf16(text, 10)).toThrow(RangeError);
  });

  it('advances over long astral runs in chunks', () => {
    const s = '🎉'.repeat(5000) + 'x';
    expect(advance(stringSource(s), 0, 5000)).toBe(10000);
    expect(advance(stringSource(s), 2, 4999)).toBe(10000);
  });

  it('turns editor changes into ops in code points', () => {
    const text = stringSource('💃123');
    // Insert "x" after the emoji: units 2, code point 1.
    expect(changesToOp(text, [{ from: 2, to: 2, insert: 'x' }])).toEqual([1, 'x']);
    // Delete the emoji: two units, one code point.
    expect(changesToOp(text, [{ from: 0, to: 2, insert: '' }])).toEqual([{ d: 1 }]);
    // Replace "2" with an astral character, and append.
    expect(
      changesToOp(text, [
        { from: 3, to: 4, insert: '🤖' },
        { from: 5, to: 5, insert: '\n' },
      ]),
    ).toEqual([2, { d: 1 }, '🤖', 1, '\n']);
  });

  it('keeps changes on code point boundaries', () => {
    const text = stringSource('a💃b');
    expect(wholeCodePoints(text, { from: 2, to: 2, insert: 'x' })).toEqual({ from: 3, to: 3, insert: 'x' });
    expect(wholeCodePoints(text, { from: 2, to: 3, insert: '' })).toEqual({ from: 1, to: 3, insert: '' });
    expect(wholeCodePoints(text, { from: 0, to: 2, insert: '' })).toEqual({ from: 0, to: 3, insert: '' });
    expect(wholeCodePoints(text, { from: 0, to: 0, insert: 'x\ud83d' })).toEqual({ from: 0, to: 0, insert: 'x\ufffd' });
    expect(wholeCodePoints(text, { from: 0, to: 0, insert: '🤖' })).toEqual({ from: 0, to: 0, insert: '🤖' });
    expect(changesToOp(text, [{ from: 2, to: 2, insert: 'x' }])).toEqual([2, 'x']);
    expect(changesToOp(text, [{ from: 2, to: 3, insert: '' }])).toEqual([1, { d: 1 }]);
  });

  it('turns ops into editor changes in UTF-16 units', () => {
    const text = 'a💃b🤖c';
    const op = [1, { d: 1 }, 'é', 1, '👻', 1, { d: 1 }];
    const changes = opToChanges(stringSource(text), op);
    expect(changes).toEqual([
      { from: 1, to: 3, insert: '' },
      { from: 3, to: 3, insert: 'é' },
      { from: 4, to: 4, insert: '👻' },
      { from: 6, to: 7, insert: '' },
    ]);
    expect(applyChanges(text, changes)).toBe(type.apply(text, op));
    expect(() => opToChanges(stringSource('ab'), [3, 'x'])).toThrow(RangeError);
  });

  it('round-trips random edits of text with emoji and astral characters', () => {
    const random = rng(7);
    const alphabet = ['a', 'b', ' ', '\n', 'é', '日', '💃', '🤖', '👻', '\u{1D518}', '👩‍💻'];
    const pick = () => alphabet[Math.floor(random() * alphabet.length)];
    let text = '';
    for (let round = 0; round < 2000; round++) {
      // A batch of non-overlapping changes at code point boundaries.
      const points = [...text];
      const changes: Change[] = [];
      let cp = 0;
      let unit = 0;
      while (cp <= points.length && changes.length < 3) {
        const skip = Math.floor(random() * 4);
        if (cp + skip > points.length) break;
        for (let i = 0; i < skip; i++) unit += points[cp + i].length;
        cp += skip;
        const del = Math.min(Math.floor(random() * 3), points.length - cp);
        let delUnits = 0;
        for (let i = 0; i < del; i++) delUnits += points[cp + i].length;
        const insert = random() < 0.7 ? pick() + (random() < 0.3 ? pick() : '') : '';
        if (del === 0 && insert === '') continue;
        changes.push({ from: unit, to: unit + delUnits, insert });
        cp += del;
        unit += delUnits;
        if (random() < 0.5) break;
      }
      const op = changesToOp(stringSource(text), changes);
      const edited = applyChanges(text, changes);
      expect(type.apply(text, op)).toBe(edited);
      expect(applyChanges(text, opToChanges(stringSource(text), op))).toBe(edited);
      text = edited.length > 400 ? edited.slice(0, 200) : edited;
      if (/[\ud800-\udbff]$/.test(text)) text = text.slice(0, -1);
    }
  });
});

describe('crc32', () => {
  it('is CRC-32/IEEE of the UTF-8 bytes', () => {
    expect(crc32Text('SheetJS')).toBe(0x9dd03922);
    expect(crc32Text('')).toBe(0);
    expect(crc32Text('123456789')).toBe(0xcbf43926);
    expect(crc32Text('💃')).toBe(crc32Text('\u{1F483}'));
  });
});
