package ot

import (
	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/ot"
)

// fromWire converts an op's wire components. A component with no field set
// becomes an empty component, which normalising drops.
func fromWire(comps []*api.OTRuneTransformOp) ot.Op {
	op := make(ot.Op, 0, len(comps))
	for _, c := range comps {
		switch v := c.GetOp().(type) {
		case *api.OTRuneTransformOp_Skip:
			op = append(op, ot.Skip(int(v.Skip)))
		case *api.OTRuneTransformOp_Delete:
			op = append(op, ot.Delete(int(v.Delete)))
		case *api.OTRuneTransformOp_Insert:
			op = append(op, ot.Insert(v.Insert))
		default:
			op = append(op, ot.Component{})
		}
	}
	return op
}

// toWire converts a normalised op to wire components, one for one, so that
// a client comparing them with its own op sees exactly the same list.
func toWire(op ot.Op) []*api.OTRuneTransformOp {
	if len(op) == 0 {
		return nil
	}
	comps := make([]*api.OTRuneTransformOp, len(op))
	for i, c := range op {
		switch {
		case c.Insert != "":
			comps[i] = &api.OTRuneTransformOp{Op: &api.OTRuneTransformOp_Insert{Insert: c.Insert}}
		case c.Delete > 0:
			comps[i] = &api.OTRuneTransformOp{Op: &api.OTRuneTransformOp_Delete{Delete: uint32(c.Delete)}}
		default:
			comps[i] = &api.OTRuneTransformOp{Op: &api.OTRuneTransformOp_Skip{Skip: uint32(c.Skip)}}
		}
	}
	return comps
}

// span returns how many code points of the document op reads: the sum of
// its skips and deletes.
func span(op ot.Op) int {
	n := 0
	for _, c := range op {
		n += c.Skip + c.Delete
	}
	return n
}

// insertedBytes returns the bytes op inserts.
func insertedBytes(op ot.Op) int {
	n := 0
	for _, c := range op {
		n += len(c.Insert)
	}
	return n
}

// deletedRunes returns the code points op deletes.
func deletedRunes(op ot.Op) int {
	n := 0
	for _, c := range op {
		n += c.Delete
	}
	return n
}

// okCommand is the `ok` reply.
func okCommand() *api.Command { return &api.Command{Body: &api.Command_Ok{Ok: &api.OK{}}} }
