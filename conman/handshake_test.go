package conman_test

import (
	"sync"
	"testing"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
)

func TestHandshakeOrder(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	var mu sync.Mutex
	var seen []*api.Command
	c := conmantest.DialURL(t, d.URL(d.Token(t, conmantest.User)), client.Options{Trace: func(cmd *api.Command) {
		mu.Lock()
		seen = append(seen, cmd)
		mu.Unlock()
	}})
	if _, err := c.Ping(conmantest.Context(t)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 3 {
		t.Fatalf("got %d messages, want bootStatus, containerState, pong", len(seen))
	}
	if bs := seen[0].GetBootStatus(); seen[0].Channel != 0 || bs == nil || bs.Stage != api.BootStatus_COMPLETE {
		t.Errorf("first message = %v, want bootStatus{COMPLETE} on channel 0", seen[0])
	}
	if cs := seen[1].GetContainerState(); seen[1].Channel != 0 || cs == nil || cs.State != api.ContainerState_READY {
		t.Errorf("second message = %v, want containerState{READY} on channel 0", seen[1])
	}
	if seen[2].GetPong() == nil || seen[2].Ref == "" {
		t.Errorf("third message = %v, want pong with the ping's ref", seen[2])
	}
}
