// Package protocoltest checks conman's compatibility statement,
// docs/protocol.md, against the daemon: its tests read the table of every
// body of the Command oneof and the table of services from that file, then
// send every body, with a ref, to every service of a running daemon and on
// channel 0, as a read-write and as a read-only session, and hold each
// answer to what the table says. A body added to api/api.proto without a
// row in the table, a service the table does not list, and a row the
// daemon does not honour all fail them.
//
// The package has no code of its own; it must not be imported.
package protocoltest
