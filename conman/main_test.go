package conman_test

import (
	"testing"

	"go.uber.org/goleak"

	// The services the end-to-end tests talk to.
	_ "github.com/conman-dev/conman/services/debug"
	_ "github.com/conman-dev/conman/services/sink"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
