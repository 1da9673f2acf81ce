package ot

import (
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
	"unicode/utf8"
)

// Doc is a text document that ops are applied to in place. It is a rope: a
// B-tree whose leaves hold UTF-8 text of up to a few kilobytes, and whose
// nodes know their length in code points and bytes, so that applying a
// small op to a large document takes time logarithmic in its size. Its
// CRC32 is kept per node and updated only where the text changed.
//
// The zero Doc is an empty document. A Doc is not safe for concurrent use,
// not even by readers only: CRC32 updates the sums it keeps.
type Doc struct {
	root *node
	lim  limits
}

// NewDoc returns a Doc holding text, or ErrInvalidText if text is not
// valid UTF-8.
func NewDoc(text string) (*Doc, error) {
	return newDoc(text, defaultLimits)
}

// newDoc is NewDoc with the given node sizes.
func newDoc(text string, lim limits) (*Doc, error) {
	if !utf8.ValidString(text) {
		return nil, ErrInvalidText
	}
	nodes := lim.leaves([]byte(text), lim.leaf*3/4)
	for len(nodes) > 1 {
		nodes = lim.group(nodes)
	}
	return &Doc{root: nodes[0], lim: lim}, nil
}

// Len returns the length of the document in code points.
func (d *Doc) Len() int {
	if d.root == nil {
		return 0
	}
	return d.root.runes
}

// Size returns the length of the document in bytes of UTF-8.
func (d *Doc) Size() int {
	if d.root == nil {
		return 0
	}
	return d.root.bytes
}

// String returns the text of the document.
func (d *Doc) String() string {
	var b strings.Builder
	b.Grow(d.Size())
	var walk func(n *node)
	walk = func(n *node) {
		if n.leaf {
			b.Write(n.text)
			return
		}
		for _, k := range n.kids {
			walk(k)
		}
	}
	if d.root != nil {
		walk(d.root)
	}
	return b.String()
}

// CRC32 returns the CRC-32 (IEEE) of the document's UTF-8 text, equal to
// CRC32(d.String()). After an edit it recomputes only the changed leaves and
// their ancestors.
func (d *Doc) CRC32() uint32 {
	if d.root == nil {
		return 0
	}
	d.root.summarize()
	return d.root.crc
}

// Apply applies op to the document in place. On error (see the package
// function Apply) the document is unchanged.
func (d *Doc) Apply(op Op) error {
	if err := op.Validate(); err != nil {
		return err
	}
	need := 0
	for i, c := range op {
		n := c.Skip + c.Delete
		if n > d.Len()-need {
			return fmt.Errorf("%w: component %d reaches code point %d of %d", ErrTooLong, i, need+n, d.Len())
		}
		need += n
	}
	if d.root == nil {
		d.root = newLeaf(nil)
	}
	if d.lim == (limits{}) {
		d.lim = defaultLimits
	}
	pos := 0
	for _, c := range op {
		switch {
		case c.Skip > 0:
			pos += c.Skip
		case c.Delete > 0:
			d.delete(pos, pos+c.Delete)
		case c.Insert != "":
			n := runeCount(c.Insert)
			d.insert(pos, c.Insert, n)
			pos += n
		}
	}
	return nil
}

// insert inserts s, n code points long, at pos.
func (d *Doc) insert(pos int, s string, n int) {
	nodes := d.lim.insert(d.root, pos, s, n)
	if nodes == nil {
		return
	}
	for len(nodes) > 1 {
		nodes = d.lim.group(nodes)
	}
	d.root = nodes[0]
}

// delete removes the code points [from, to).
func (d *Doc) delete(from, to int) {
	d.lim.delete(d.root, from, to)
	for !d.root.leaf && len(d.root.kids) == 1 {
		d.root = d.root.kids[0]
	}
	if !d.root.leaf && len(d.root.kids) == 0 {
		d.root = newLeaf(nil)
	}
}

// node is a node of a Doc's rope. All leaves are at the same depth; only
// the root may be an empty leaf.
type node struct {
	leaf  bool
	text  []byte  // a leaf's text; it may share its array, never its capacity
	kids  []*node // an internal node's children
	runes int     // length in code points
	bytes int     // length in bytes

	// crc is the CRC-32 of the node's text and shift its shiftFor(bytes);
	// both are valid only if summed.
	crc, shift uint32
	summed     bool
}

// newLeaf returns a leaf holding text.
func newLeaf(text []byte) *node {
	return &node{leaf: true, text: text, runes: utf8.RuneCount(text), bytes: len(text)}
}

// offset returns the byte offset of code point pos in leaf n's text.
func (n *node) offset(pos int) int {
	if n.runes == n.bytes {
		return pos
	}
	return byteOffset(n.text, pos)
}

// newInternal returns an internal node with the given children.
func newInternal(kids []*node) *node {
	n := &node{kids: kids}
	for _, k := range kids {
		n.runes += k.runes
		n.bytes += k.bytes
	}
	return n
}

// summarize brings crc and shift up to date.
func (n *node) summarize() {
	if n.summed {
		return
	}
	if n.leaf {
		n.crc = crc32.ChecksumIEEE(n.text)
	} else {
		n.crc = 0
		for _, k := range n.kids {
			k.summarize()
			n.crc = crcCombine(n.crc, k.crc, k.shift)
		}
	}
	n.shift = shiftFor(n.bytes)
	n.summed = true
}

// limits are the node sizes of a rope.
type limits struct {
	leaf int // most bytes in a leaf (at least utf8.UTFMax)
	kids int // most children of an internal node (at least 2)
}

// defaultLimits keep leaves a few kilobytes, small enough to splice and
// checksum quickly and large enough to keep the tree shallow.
var defaultLimits = limits{leaf: 2048, kids: 16}

// underfull reports whether n should be merged with a sibling.
func (l limits) underfull(n *node) bool {
	if n.leaf {
		return n.bytes < l.leaf/4
	}
	return len(n.kids) < l.kids/2
}

// leaves splits text into leaves of about target bytes, cut at code point
// boundaries. The leaves share text's array but not its capacity. Empty
// text gives one empty leaf.
func (l limits) leaves(text []byte, target int) []*node {
	k := max(1, (len(text)+target-1)/target)
	out := make([]*node, 0, k)
	for ; k > 0; k-- {
		cut := len(text) / k
		for cut < len(text) && !utf8.RuneStart(text[cut]) {
			cut++
		}
		if cut > 0 || len(out) == 0 && k == 1 {
			out = append(out, newLeaf(text[:cut:cut]))
		}
		text = text[cut:]
	}
	return out
}

// group returns internal nodes with nodes as their children, as few as
// fit, with about equally many children each.
func (l limits) group(nodes []*node) []*node {
	k := (len(nodes) + l.kids - 1) / l.kids
	out := make([]*node, 0, k)
	for ; k > 0; k-- {
		cut := len(nodes) / k
		out = append(out, newInternal(slices.Clone(nodes[:cut])))
		nodes = nodes[cut:]
	}
	return out
}

// insert inserts s, n code points long, at pos in the subtree of node x.
// It returns nil if x was updated in place, or else the nodes, of the same
// height as x, that replace it.
func (l limits) insert(x *node, pos int, s string, n int) []*node {
	at := 0
	if x.leaf {
		at = x.offset(pos)
	}
	x.summed = false
	x.runes += n
	x.bytes += len(s)
	if x.leaf {
		if len(x.text)+len(s) <= l.leaf {
			old := len(x.text)
			x.text = append(x.text, s...)
			copy(x.text[at+len(s):], x.text[at:old])
			copy(x.text[at:], s)
			return nil
		}
		text := make([]byte, 0, len(x.text)+len(s))
		text = append(append(append(text, x.text[:at]...), s...), x.text[at:]...)
		return l.leaves(text, l.leaf)
	}
	i := 0
	for ; i < len(x.kids)-1 && pos > x.kids[i].runes; i++ {
		pos -= x.kids[i].runes
	}
	split := l.insert(x.kids[i], pos, s, n)
	if split == nil {
		return nil
	}
	x.kids = slices.Replace(x.kids, i, i+1, split...)
	if len(x.kids) <= l.kids {
		return nil
	}
	return l.group(x.kids)
}

// delete removes the code points [from, to) of the subtree of node x, where
// 0 <= from < to <= x.runes. An internal node may be left with no children
// or underfull; its parent (or the Doc, for the root) fixes that.
func (l limits) delete(x *node, from, to int) {
	x.summed = false
	if x.leaf {
		i, j := x.offset(from), x.offset(to)
		x.text = append(x.text[:i], x.text[j:]...)
		x.runes -= to - from
		x.bytes -= j - i
		return
	}
	kept := x.kids[:0]
	start := 0
	for _, k := range x.kids {
		end := start + k.runes
		switch {
		case end <= from || start >= to:
			kept = append(kept, k)
		case from <= start && end <= to:
			// Wholly deleted.
		default:
			l.delete(k, max(from, start)-start, min(to, end)-start)
			kept = append(kept, k)
		}
		start = end
	}
	clear(x.kids[len(kept):])
	x.kids = kept
	l.rebalance(x)
	*x = *newInternal(x.kids)
}

// rebalance merges x's underfull children with their siblings.
func (l limits) rebalance(x *node) {
	for i := 0; i < len(x.kids) && len(x.kids) > 1; {
		if !l.underfull(x.kids[i]) {
			i++
			continue
		}
		j := min(i, len(x.kids)-2) // merge kids j and j+1
		merged := l.merge(x.kids[j], x.kids[j+1])
		x.kids = slices.Replace(x.kids, j, j+2, merged...)
		if len(merged) == 1 {
			i = j // it may still be underfull: look at it again
		} else {
			i = j + 2 // each is about half full
		}
	}
}

// merge joins siblings a and b into one node, or two of about equal size if
// one would be too big.
func (l limits) merge(a, b *node) []*node {
	if a.leaf {
		text := make([]byte, 0, a.bytes+b.bytes)
		text = append(append(text, a.text...), b.text...)
		if len(text) <= l.leaf {
			return []*node{newLeaf(text)}
		}
		return l.leaves(text, (len(text)+1)/2)
	}
	kids := append(slices.Clip(a.kids), b.kids...)
	if len(kids) <= l.kids {
		return []*node{newInternal(kids)}
	}
	return []*node{newInternal(slices.Clone(kids[:len(kids)/2])), newInternal(slices.Clone(kids[len(kids)/2:]))}
}
