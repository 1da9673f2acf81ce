package proc

import (
	"strings"
	"unicode/utf8"
)

// TextDecoder turns a stream of process output, cut anywhere, into the
// valid UTF-8 that protocol strings must hold: a multi-byte character
// split between two chunks is held back until it is complete, and bytes
// that are not UTF-8 become U+FFFD. The zero value is ready to use; it is
// not safe for concurrent use.
type TextDecoder struct {
	held [utf8.UTFMax]byte
	n    int
}

// Decode returns the text of p, following what earlier calls held back.
func (d *TextDecoder) Decode(p []byte) string {
	if d.n > 0 {
		joined := make([]byte, 0, d.n+len(p))
		joined = append(joined, d.held[:d.n]...)
		p = append(joined, p...)
		d.n = 0
	}
	cut := incompleteTail(p)
	d.n = copy(d.held[:], p[cut:])
	return validText(p[:cut])
}

// Flush returns what is held back, as U+FFFD if anything is: the stream
// ended, or jumped, in the middle of a character.
func (d *TextDecoder) Flush() string {
	if d.n == 0 {
		return ""
	}
	d.n = 0
	return string(utf8.RuneError)
}

// incompleteTail returns where a character that p ends in the middle of
// begins, or len(p).
func incompleteTail(p []byte) int {
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(p[i]) {
			if !utf8.FullRune(p[i:]) {
				return i
			}
			break
		}
	}
	return len(p)
}

func validText(p []byte) string {
	if utf8.Valid(p) {
		return string(p)
	}
	return strings.ToValidUTF8(string(p), string(utf8.RuneError))
}

// SplitText cuts s into pieces of at most max bytes (but at least one
// character each), never inside a character.
func SplitText(s string, max int) []string {
	if len(s) <= max {
		return []string{s}
	}
	var pieces []string
	for len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		if cut == 0 {
			_, cut = utf8.DecodeRuneInString(s)
		}
		pieces = append(pieces, s[:cut])
		s = s[cut:]
	}
	if s != "" {
		pieces = append(pieces, s)
	}
	return pieces
}
