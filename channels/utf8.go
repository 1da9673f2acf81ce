package channels

import (
	"errors"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/conman-dev/conman/api"
)

// Why repair instead of refuse: JavaScript strings may hold lone
// surrogates, and the official client's encoder writes them as bytes that
// are not UTF-8. Go's decoder rejects the whole frame for that; refusing it
// would cut the session off, and a reconnecting editor would send the same
// frame again. So a frame refused only for invalid UTF-8 is decoded again
// with each bad string repaired to U+FFFD (what a browser's TextEncoder does
// with a lone surrogate).

// decodeCommand unmarshals a frame, repairing invalid UTF-8 in strings.
func decodeCommand(frame []byte) (*api.Command, error) {
	cmd := new(api.Command)
	err := proto.Unmarshal(frame, cmd)
	var utf8Err interface{ InvalidUTF8() bool }
	if err == nil || !errors.As(err, &utf8Err) {
		return cmd, err
	}
	repaired, ok := repairUTF8(frame, cmd.ProtoReflect().Descriptor(), 0)
	if !ok {
		return nil, err
	}
	cmd = new(api.Command)
	if rerr := proto.Unmarshal(repaired, cmd); rerr != nil {
		return nil, err
	}
	return cmd, nil
}

// maxRepairDepth bounds the nesting repairUTF8 follows (protobuf's own
// decoder stops at 10,000; no message of the protocol nests deeply).
const maxRepairDepth = 64

// repairUTF8 copies the encoded message b of type md, replacing invalid
// UTF-8 in string fields (nested messages and map entries included). It
// reports false when b is not well-formed.
func repairUTF8(b []byte, md protoreflect.MessageDescriptor, depth int) ([]byte, bool) {
	if depth > maxRepairDepth {
		return nil, false
	}
	out := make([]byte, 0, len(b)+8)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		fd := md.Fields().ByNumber(num)
		if typ == protowire.BytesType && fd != nil {
			v, m := protowire.ConsumeBytes(b[n:])
			if m < 0 {
				return nil, false
			}
			switch fd.Kind() {
			case protoreflect.StringKind:
				if !utf8.Valid(v) {
					v = []byte(strings.ToValidUTF8(string(v), "\uFFFD"))
				}
			case protoreflect.MessageKind:
				var ok bool
				if v, ok = repairUTF8(v, fd.Message(), depth+1); !ok {
					return nil, false
				}
			}
			out = protowire.AppendTag(out, num, typ)
			out = protowire.AppendBytes(out, v)
			b = b[n+m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return nil, false
		}
		out = append(out, b[:n+m]...)
		b = b[n+m:]
	}
	return out, true
}
