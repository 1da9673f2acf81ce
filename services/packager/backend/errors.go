package backend

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Kind classifies a failure for the client.
type Kind int

// The kinds of failure.
const (
	// KindInternal is anything unclassified (a file that cannot be
	// written, a malformed registry answer).
	KindInternal Kind = iota
	// KindInvalid is a request that cannot be carried out as asked (a bad
	// name, nothing to install, an unsupported search).
	KindInvalid
	// KindNotFound is a package, module or version the registry does not
	// have.
	KindNotFound
	// KindUnreachable is a registry that cannot be reached.
	KindUnreachable
	// KindDisabled is an operation this daemon is not configured to do.
	KindDisabled
	// KindFailed is a tool that ran and failed for another reason.
	KindFailed
)

// Error is a classified failure. Its text is the reason a client sees; the
// cause stays available to errors.Is/As and the log.
type Error struct {
	Kind   Kind
	Reason string
	Err    error
}

func (e *Error) Error() string { return e.Reason }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of kind whose reason is formatted from format
// and args; cause may be nil.
func Errorf(kind Kind, cause error, format string, args ...any) *Error {
	return &Error{Kind: kind, Reason: fmt.Sprintf(format, args...), Err: cause}
}

// Unreachable reports that registry (a phrase such as "the npm registry")
// cannot be reached.
func Unreachable(registry string, cause error) *Error {
	return &Error{Kind: KindUnreachable, Reason: registry + " is unreachable", Err: cause}
}

// KindOf returns the kind of the first *Error in err's chain, or
// KindInternal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// maxDetail bounds a line of tool output quoted in a reason.
const maxDetail = 240

// Detail shortens one line of tool output for use in a reason.
func Detail(line string) string {
	line = strings.TrimSpace(line)
	if len(line) > maxDetail {
		line = line[:maxDetail] + "…"
	}
	return line
}

// Stopped reports whether err is a context's end (the client left, the
// daemon stops, a deadline passed) rather than a failure to classify.
func Stopped(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
