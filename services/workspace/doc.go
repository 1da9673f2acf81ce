// Package workspace owns the daemon's access to the workspace filesystem:
// turning the paths clients send into safe workspace-relative paths,
// reading, listing and stating files, atomic and durable writes, chunked
// uploads, the error taxonomy clients see, and the write hook through which
// another service (collaborative editing) takes over writes to the files it
// holds.
//
// It must not know the wire protocol or any service: it imports neither api
// nor channels, and it never sends anything. Services (files, fsevents, ot)
// build on it.
//
// # Paths
//
// A path names a file relative to the workspace root; a leading "/" means
// the root, so "/etc/passwd" is <workspace>/etc/passwd, never the host's
// file. Every path goes through [FS.Resolve] before anything touches the
// disk. It refuses, with an error of code [CodeInvalidPath] and without
// touching anything:
//
//   - ".." that would climb above the root, and symbolic links (or chains of
//     them) whose target leaves the root;
//   - symbolic link loops and chains longer than [MaxSymlinks]
//     ("too many levels of symbolic links");
//   - NUL bytes, paths longer than [MaxPathBytes] and components longer than
//     [MaxNameBytes] ("file name too long");
//   - strings that are not valid UTF-8: the protocol carries paths as
//     protobuf strings, which must be UTF-8 (the daemon's frame decoder
//     repairs invalid bytes to U+FFFD before a service sees them), so such a
//     name can neither arrive from nor be sent to a client. [FS.List] leaves
//     names that are not valid UTF-8 out for the same reason;
//   - the daemon's data directory, paths inside it, and paths whose
//     resolution passes through it (".conman/../x" included), however they
//     are spelled or linked to; [FS.List] leaves it out of its parent's
//     listing.
//
// Symbolic links that stay inside the workspace work, absolute ones
// included when they point inside it. Resolution follows POSIX: a symbolic
// link is replaced by its target before a later ".." applies. Below a
// component that does not exist the rest of the path can only name new
// entries (a later ".." is "no such file or directory"). A path whose own
// ".." components climb above the root as spelled is refused even where
// links would lead back inside.
//
// Every operation then goes through an [os.Root] opened on the workspace,
// so even a link swapped in between resolution and use cannot lead outside
// it. A process inside the container that races to swap links could at
// worst steer an operation to another place inside the workspace (the data
// dir included); such a process can read the data dir directly anyway, and
// no client can create links through the protocol.
//
// # Errors
//
// Every error an [FS] method returns is an [*Error] whose text reads like
// Go's own *fs.PathError, with the workspace-relative path the caller gave
// ("read src/a.go: no such file or directory", "move a b: file exists");
// host paths never appear. Clients match on the substrings Go uses ("no such
// file", "file exists", "not a directory", "is a directory", "permission
// denied"). Each error has one code of this taxonomy, returned by [Code]:
//
//	CodeInvalidPath  the path is refused (see Paths) or may not be used so
//	                 (removing the workspace root)
//	CodeInvalid      the request is malformed: a transfer's size or
//	                 checksum does not match, too many transfers at once,
//	                 moving a directory into itself
//	CodeNotFound     no such file or directory (or transfer)
//	CodeExists       file exists: the target of a move or mkdir is taken
//	CodeNotDir       not a directory: a component of the path is a file
//	CodeIsDir        is a directory: reading or writing a directory
//	CodeTooLarge     file too large: over the read limit, or more upload
//	                 data than announced
//	CodeNoSpace      no space left on device (or quota exceeded)
//	CodePermission   permission denied, read-only file system
//	CodeInternal     anything else
//
// # Writes
//
// [FS.Write] replaces a file atomically and durably: the content goes to a
// temporary file in the same directory (named with [TempPrefix]), which is
// synced, given the old file's mode (and owner, when the daemon may), renamed
// over the file, and the directory is synced. A crash or a full disk leaves
// the old or the new content, never a mix, and a failed write removes its
// temporary file. Hard links to the old file keep the old content, as with
// any editor's atomic save. Temporary files are hidden from [FS.List].
//
// Before writing, Write offers the content to the [WriteInterceptor]
// registered for the file's resolved path, if any (see [Interceptors]).
//
// # Concurrency
//
// An [FS] is safe for concurrent use. An [Upload] belongs to one goroutine
// at a time.
package workspace
