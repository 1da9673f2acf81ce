'use strict'
// Cross-check for the Go package ot: reads cases as JSON on stdin and writes,
// for each, what the reference OT type ot-text-unicode makes of it.
//
// Input:  {"cases": [{doc, a, b, c, side, cursors}]}, where a and b are ops
//         on doc, c is an op on apply(doc, a), side is "left" or "right", and
//         cursors are positions in doc. Ops are in ot-text-unicode's form
//         (number = skip, string = insert, {d: n} = delete) and need not be
//         normalised.
// Output: {"results": [...]} in the same order; see result() below. A case
//         the reference throws on yields {"error": message}.

const fs = require('fs')
const zlib = require('zlib')
const { type } = require('ot-text-unicode')

// normalize and compose update delete components in place: give every call
// its own copy.
const copy = op => op.map(c => (typeof c === 'object' ? { ...c } : c))

function result (k) {
  const a = type.normalize(copy(k.a))
  const b = type.normalize(copy(k.b))
  const c = type.normalize(copy(k.c))
  const other = k.side === 'left' ? 'right' : 'left'
  const applyA = type.apply(k.doc, a)
  const applyB = type.apply(k.doc, b)
  const ta = type.transform(copy(a), copy(b), k.side)
  const tb = type.transform(copy(b), copy(a), other)
  const composed = type.compose(copy(a), copy(c))
  return {
    a, // normalize(a)
    b,
    c,
    applyA, // apply(doc, a)
    applyB,
    ta, // transform(a, b, side)
    tb, // transform(b, a, the other side)
    convergedA: type.apply(applyB, ta), // apply(apply(doc, b), ta)
    convergedB: type.apply(applyA, tb), // apply(apply(doc, a), tb)
    compose: composed, // compose(a, c)
    applyAC: type.apply(applyA, c), // apply(apply(doc, a), c)
    applyCompose: type.apply(k.doc, composed), // apply(doc, compose(a, c))
    cursors: k.cursors.map(p => type.transformPosition(p, a)),
    // zlib.crc32 is in Node >= 20.15.
    crc: typeof zlib.crc32 === 'function' ? zlib.crc32(k.doc) : null
  }
}

const { cases } = JSON.parse(fs.readFileSync(0, 'utf8'))
const results = cases.map(k => {
  try {
    return result(k)
  } catch (e) {
    return { error: String(e && e.stack ? e.stack : e) }
  }
})
process.stdout.write(JSON.stringify({ results }))
