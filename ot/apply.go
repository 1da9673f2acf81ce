package ot

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Apply returns doc with op applied. It fails with ErrInvalidText if doc is
// not valid UTF-8, with ErrInvalidOp if op is malformed, and with ErrTooLong
// if op skips or deletes past the end of doc. It copies the whole document;
// use a Doc to edit large documents repeatedly.
func Apply(doc string, op Op) (string, error) {
	if !utf8.ValidString(doc) {
		return "", ErrInvalidText
	}
	if err := op.Validate(); err != nil {
		return "", err
	}
	grow := 0
	for _, c := range op {
		grow += len(c.Insert)
	}
	var out strings.Builder
	out.Grow(len(doc) + grow)
	rest := doc
	for i, c := range op {
		switch {
		case c.Skip > 0:
			cut, ok := advance(rest, c.Skip)
			if !ok {
				return "", fmt.Errorf("%w: component %d skips past the end", ErrTooLong, i)
			}
			out.WriteString(rest[:cut])
			rest = rest[cut:]
		case c.Delete > 0:
			cut, ok := advance(rest, c.Delete)
			if !ok {
				return "", fmt.Errorf("%w: component %d deletes past the end", ErrTooLong, i)
			}
			rest = rest[cut:]
		case c.Insert != "":
			out.WriteString(c.Insert)
		}
	}
	out.WriteString(rest)
	return out.String(), nil
}

// advance returns the byte offset in s after n code points, and false if s
// is shorter than n code points.
func advance(s string, n int) (int, bool) {
	offset, lacking := skipRunes(s, n)
	return offset, lacking == 0
}
