package diag

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/conman-dev/conman/api"
)

// takeProfile takes the profile req asks for. A CPU profile ends early,
// with an error, when ctx does.
func takeProfile(ctx context.Context, req *api.PprofRequest) ([]byte, error) {
	var buf bytes.Buffer
	switch kind := req.Body.(type) {
	case *api.PprofRequest_PprofCpuProfileRequest:
		seconds := kind.PprofCpuProfileRequest.GetSeconds()
		switch {
		case seconds == 0:
			seconds = 1
		case seconds < 0 || seconds > MaxCPUSeconds:
			return nil, fmt.Errorf("pprof: a cpu profile takes 1 to %d seconds, not %d", MaxCPUSeconds, seconds)
		}
		if err := pprof.StartCPUProfile(&buf); err != nil {
			return nil, errors.New("pprof: a cpu profile is already running")
		}
		timer := time.NewTimer(time.Duration(seconds) * time.Second)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			pprof.StopCPUProfile()
			return nil, fmt.Errorf("pprof: cpu profile: %w", ctx.Err())
		}
		pprof.StopCPUProfile()
		return buf.Bytes(), nil
	case *api.PprofRequest_PprofHeapProfileRequest:
		if kind.PprofHeapProfileRequest.GetGc() {
			runtime.GC()
		}
		return lookup("heap", kind.PprofHeapProfileRequest.GetDebug())
	case *api.PprofRequest_PprofAllocsProfileRequest:
		return lookup("allocs", kind.PprofAllocsProfileRequest.GetDebug())
	case *api.PprofRequest_PprofBlockProfileRequest:
		return lookup("block", kind.PprofBlockProfileRequest.GetDebug())
	case *api.PprofRequest_PprofMutexProfileRequest:
		return lookup("mutex", kind.PprofMutexProfileRequest.GetDebug())
	case nil:
		return lookup("goroutine", false)
	}
	return nil, errors.New("pprof: unknown profile kind")
}

// lookup writes a runtime profile: gzipped protobuf, or text with debug.
func lookup(name string, debug bool) ([]byte, error) {
	p := pprof.Lookup(name)
	if p == nil {
		return nil, fmt.Errorf("pprof: no %s profile", name)
	}
	level := 0
	if debug {
		level = 1
	}
	var buf bytes.Buffer
	if err := p.WriteTo(&buf, level); err != nil {
		return nil, fmt.Errorf("pprof: %s: %w", name, err)
	}
	return buf.Bytes(), nil
}
