// Package ot is the collaborative editing service, wire name "ot": every
// session editing a file shares one document, changed by operational
// transformation (the algebra is the ot package at the repository root),
// with a durable, numbered history.
//
// It owns the documents, their histories in DataDir/ot, the files being
// edited while they are loaded (the files service's writes to them are
// handed to it, see workspace.WriteInterceptor), and a watcher of those
// files. It must not import another service, do OT algebra of its own, or
// send anything to a session that is not durable: a packet goes out only
// after its history record is synced.
//
// # Protocol
//
// A channel is named "ot:<path>" and shared by every session that attaches
// to that name; several names of one file share one document.
//
//   - On attach a session gets otstatus{contents, version, linkedFile,
//     cursors}. A channel whose file has a history is linked at open; a
//     fresh one sends otstatus without linkedFile.
//   - otLinkFile{file{path}} links the channel and the session:
//     otLinkFileResponse{version, linkedFile{path, content}}. A file
//     without history gets one: version 1 inserts its text (an empty or
//     missing file stays at version 0). Binary files (a NUL byte), text
//     that is not UTF-8, directories and files over MaxDocBytes are refused
//     with an error.
//   - ot{spookyVersion or version: V, ops, nonce} is transformed against
//     the versions after V, each winning ties (ot.Right), normalised,
//     applied and numbered. Its packet ot{spookyVersion, version, ops,
//     crc32 of the whole text after it, committed, nonce, userId} goes to
//     every linked session, the author included, in version order; then
//     the request gets ok. An op that transforms to nothing still takes a
//     version. A base newer than the document, or an op that does not fit
//     (it skips or deletes past the end of version V), is an error and
//     changes nothing. Read-only sessions are refused ot by the channel
//     layer and may do everything else.
//   - otFetchRequest{versionFrom, versionTo} → otFetchResponse{packets},
//     inclusive, as the packets were sent, up to MaxFetchBytes.
//   - otNewCursor and otDeleteCursor go to the other sessions, carrying the
//     sender's user; cursors are listed in otstatus, move with the text,
//     and are deleted (and the deletion sent) when their session leaves.
//     With a ref they are answered ok.
//   - flush → ok once the file on disk holds the text, synced.
//
// # History
//
// Each file's history is an append-only log, DataDir/ot/<hash of path>.log
// (record.go): records framed by length and CRC-32C, a header naming the
// path, every packet as it was sent, and disk marks saying which version
// the file was written at. Loading replays it and cuts off a torn tail (a
// record that is short or fails its checksum). Versions are never
// renumbered.
//
// Group commit: Handle transforms and applies an op to the document in
// memory, appends its record to a buffer and returns; the document's
// committer writes the buffer and syncs the log, and only then, under the
// document's lock, applies the batch to the published copy, sends each
// packet and answers each request. While one batch syncs, the next one
// gathers, so a sync serves every op that arrived during the previous one.
// Every op answered ok, and every packet any session saw, survives a crash
// of the daemon.
//
// Hand-over: otstatus and otLinkFileResponse carry the published copy and
// are queued under the same lock as the packets, so a session sees every
// version exactly once, after its snapshot.
//
// # The file
//
// The published text is written to the file atomically (a synced
// temporary file renamed into place) Debounce after a change, at once for a
// flush, and when the document is unloaded; a file behind its history after
// a crash is written at the next start by a recovery pass. Changes to the
// file by other processes (seen by the watcher) and writes through the
// files service become the next version: a code-point diff of the
// document and the new text, matched line by line. The daemon's own writes
// are recognised by their CRC and not imported; before each write the file
// is compared with what the daemon last knew of it, so a change made in
// between is imported rather than overwritten. When a document is loaded
// and the file matches none of the versions since the last disk mark, it
// was changed while nobody watched, and the difference is appended too
// (deletion counts as emptying it). A file deleted while loaded is left
// deleted until the next change.
//
// Documents nobody holds are unloaded after IdleTimeout.
//
// # Concurrency
//
// Service.mu guards the registry of documents; document.mu guards a
// document's state; instance.mu guards a channel's sessions. Lock order:
// document.mu, then instance.mu, then the channels package's own locks;
// Service.mu is never held with the others. Goroutines: per service the
// reaper, the watcher's loop and the recovery pass (ended in Stop); per
// loaded document its committer and flusher (ended when it is unloaded).
package ot
