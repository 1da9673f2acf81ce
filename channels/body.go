package channels

import (
	"fmt"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/conman-dev/conman/api"
)

// bodyOneof is the descriptor of Command's body oneof.
var bodyOneof = (&api.Command{}).ProtoReflect().Descriptor().Oneofs().ByName("body")

// BodyName names the body of cmd the way the protocol spells it ("openChan",
// "write", "otLinkFile"). A body this build does not know is named by its
// field number ("#450"); a command without a body is "empty".
func BodyName(cmd *api.Command) string {
	if fd := cmd.ProtoReflect().WhichOneof(bodyOneof); fd != nil {
		return string(fd.Name())
	}
	if num, ok := unknownField(cmd); ok {
		return "#" + strconv.Itoa(int(num))
	}
	return "empty"
}

// unknownField returns the number of the first field of cmd this build does
// not know (a body from a newer protocol).
func unknownField(cmd *api.Command) (protowire.Number, bool) {
	unknown := cmd.ProtoReflect().GetUnknown()
	if len(unknown) == 0 {
		return 0, false
	}
	num, _, n := protowire.ConsumeTag(unknown)
	if n < 0 {
		return 0, false
	}
	return num, true
}

// mutatingBodies lists the bodies that change the workspace, a process or
// shared state on behalf of the sender. Read-only sessions are refused each
// of them with `error "permission denied"` before any service sees it; a
// handler can refine the rule with [MutationPolicy].
//
// Reading, following, cursors, presence and chat are not mutations.
var mutatingBodies = fieldSet(
	// files
	"write", "remove", "tryRemove", "move", "mkdir", "persist", "persistMirror",
	"transferStart", "transferChunk", "transferComplete",
	"fsSnapshot", "fsTakeLock", "fsReleaseLock",
	// processes and terminals
	"exec", "input", "runMain", "clear", "eval", "saneTerm", "PTYConfig",
	"runContainedTest", "debuggerStart", "debuggerStep", "pid1Config",
	// collaborative editing
	"ot",
	// packages
	"packageAdd", "packageRemove", "packageInstall", "ensurePackages", "packageCacheSave",
	// metadata and sockets
	"writeMeta", "appendMeta", "send",
)

// IsMutation reports whether cmd's body is one of the mutating bodies.
func IsMutation(cmd *api.Command) bool {
	fd := cmd.ProtoReflect().WhichOneof(bodyOneof)
	return fd != nil && mutatingBodies[fd.Number()]
}

func fieldSet(names ...string) map[protoreflect.FieldNumber]bool {
	fields := bodyOneof.Fields()
	set := make(map[protoreflect.FieldNumber]bool, len(names))
	for _, name := range names {
		fd := fields.ByName(protoreflect.Name(name))
		if fd == nil {
			panic(fmt.Sprintf("channels: %q is not a body of api.Command", name))
		}
		set[fd.Number()] = true
	}
	return set
}
