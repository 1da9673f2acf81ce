package workspace

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"
)

// ErrorCode classifies an error for clients and callers; see the package
// documentation for the taxonomy.
type ErrorCode int

// The error codes. The zero value means no error.
const (
	CodeOK ErrorCode = iota
	CodeInvalidPath
	CodeInvalid
	CodeNotFound
	CodeExists
	CodeNotDir
	CodeIsDir
	CodeTooLarge
	CodeNoSpace
	CodePermission
	CodeInternal
)

var codeNames = [...]string{
	CodeOK:          "ok",
	CodeInvalidPath: "invalid path",
	CodeInvalid:     "invalid argument",
	CodeNotFound:    "not found",
	CodeExists:      "exists",
	CodeNotDir:      "not a directory",
	CodeIsDir:       "is a directory",
	CodeTooLarge:    "too large",
	CodeNoSpace:     "no space",
	CodePermission:  "permission",
	CodeInternal:    "internal",
}

func (c ErrorCode) String() string {
	if c >= 0 && int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "code(" + strconv.Itoa(int(c)) + ")"
}

// Sentinel errors, for errors.Is. Their texts are what clients read after
// "op path: ".
var (
	// ErrInvalidPath is matched by every refused path.
	ErrInvalidPath = errors.New("invalid path")
	// ErrInvalid is matched by malformed requests.
	ErrInvalid = errors.New("invalid argument")
	// ErrTooLarge is matched by reads over the limit and by uploads that
	// send more than they announced.
	ErrTooLarge = errors.New("file too large")
	// ErrNoTransfer reports an unknown or finished upload.
	ErrNoTransfer = errors.New("no such transfer")
)

// Refusals of a path; each matches ErrInvalidPath.
var (
	errEscapes      = invalidPath("path escapes from the workspace")
	errAbsLink      = invalidPath("symbolic link to an absolute path")
	errNUL          = invalidPath("path contains a NUL byte")
	errNotUTF8      = invalidPath("path is not valid UTF-8")
	errDataDir      = invalidPath("path is reserved for the daemon's data")
	errHoldsDataDir = invalidPath("path holds the daemon's data directory")
	errRoot         = invalidPath("not permitted on the workspace root")
	errNotRegular   = invalidPath("not a regular file")
)

// invalidPathError is a refusal of a path.
type invalidPathError struct{ reason string }

func invalidPath(reason string) error            { return &invalidPathError{reason} }
func (e *invalidPathError) Error() string        { return e.reason }
func (e *invalidPathError) Is(target error) bool { return target == ErrInvalidPath }

// reasonError is a sentinel with a more specific text.
type reasonError struct {
	kind error
	text string
}

func (e *reasonError) Error() string        { return e.text }
func (e *reasonError) Is(target error) bool { return target == e.kind }

// invalidf is an ErrInvalid with its own text.
func invalidf(text string) error { return &reasonError{ErrInvalid, text} }

// Invalid returns an error of code [CodeInvalid] with text, for services
// that refuse a malformed request in this taxonomy.
func Invalid(text string) error { return invalidf(text) }

// tooLarge is an ErrTooLarge that says by how much.
func tooLarge(detail string) error {
	return &reasonError{ErrTooLarge, ErrTooLarge.Error() + " (" + detail + ")"}
}

// Error is an error of one operation on one path, in the form of Go's
// *fs.PathError ("op path: err") or, for a move, *os.LinkError ("op path
// dest: err"). Path and Dest are the workspace-relative paths the caller
// gave, never host paths.
type Error struct {
	Op   string
	Path string
	Dest string // set for two-path operations (move)
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteByte(' ')
	b.WriteString(displayPath(e.Path))
	if e.Dest != "" {
		b.WriteByte(' ')
		b.WriteString(displayPath(e.Dest))
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Code returns e's code.
func (e *Error) Code() ErrorCode { return codeOf(e.Err) }

// Code classifies err: CodeOK for nil, the code of an [*Error] or of a
// sentinel or errno anywhere in err's chain, CodeInternal otherwise.
func Code(err error) ErrorCode {
	if err == nil {
		return CodeOK
	}
	return codeOf(err)
}

func codeOf(err error) ErrorCode {
	var errno syscall.Errno
	switch {
	case errors.Is(err, ErrInvalidPath):
		return CodeInvalidPath
	case errors.Is(err, ErrInvalid):
		return CodeInvalid
	case errors.Is(err, ErrTooLarge):
		return CodeTooLarge
	case errors.Is(err, ErrNoTransfer):
		return CodeNotFound
	case errors.As(err, &errno):
		return errnoCode(errno)
	case errors.Is(err, fs.ErrNotExist):
		return CodeNotFound
	case errors.Is(err, fs.ErrExist):
		return CodeExists
	case errors.Is(err, fs.ErrPermission):
		return CodePermission
	}
	return CodeInternal
}

func errnoCode(errno syscall.Errno) ErrorCode {
	switch errno {
	case syscall.ENOENT:
		return CodeNotFound
	case syscall.EEXIST, syscall.ENOTEMPTY:
		return CodeExists
	case syscall.ENOTDIR:
		return CodeNotDir
	case syscall.EISDIR:
		return CodeIsDir
	case syscall.EFBIG:
		return CodeTooLarge
	case syscall.ENOSPC, syscall.EDQUOT:
		return CodeNoSpace
	case syscall.EACCES, syscall.EPERM, syscall.EROFS:
		return CodePermission
	case syscall.ENAMETOOLONG, syscall.ELOOP:
		return CodeInvalidPath
	case syscall.EINVAL:
		return CodeInvalid
	}
	return CodeInternal
}

// osEscape is the text of os.Root's refusal of a path that leaves it.
const osEscape = "path escapes from parent"

// bare strips the operation and host path off an error from the os package,
// keeping the cause (an errno, usually), so that an [Error] can present it
// with the caller's own path.
func bare(err error) error {
	for {
		var pe *fs.PathError
		var le *os.LinkError
		var se *os.SyscallError
		if errors.As(err, &pe) {
			err = pe.Err
		} else if errors.As(err, &le) {
			err = le.Err
		} else if errors.As(err, &se) {
			err = se.Err
		} else {
			break
		}
	}
	if err != nil && err.Error() == osEscape {
		return errEscapes
	}
	return err
}

// pathErr wraps err into an [*Error] for op on the caller's path p.
func pathErr(op, p string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Op: op, Path: p, Err: bare(err)}
}

// maxDisplayBytes bounds the path quoted in an error text.
const maxDisplayBytes = 256

// displayPath is how a caller's path appears in an error text: without
// leading slashes ("/" for the root), quoted when it holds control
// characters or bytes that are not UTF-8 (the text travels as a protobuf
// string), and clipped when long.
func displayPath(p string) string {
	p = strings.TrimLeft(p, "/")
	if p == "" {
		return "/"
	}
	clipped := false
	if len(p) > maxDisplayBytes {
		cut := maxDisplayBytes
		for cut > 0 && !utf8.RuneStart(p[cut]) {
			cut--
		}
		p, clipped = p[:cut], true
	}
	if !utf8.ValidString(p) || strings.IndexFunc(p, unicode.IsControl) >= 0 {
		p = strconv.Quote(p)
	}
	if clipped {
		p += "…"
	}
	return p
}
