package fsevents

// PauseEvents holds the service's event loop (of every daemon in the test
// binary) until resume is called, so the kernel's queue can overflow. Tests
// that use it must not run in parallel with others.
func PauseEvents() (resume func()) {
	gate := make(chan struct{})
	testGate.Store(&gate)
	return func() {
		testGate.Store(nil)
		close(gate)
	}
}

// SetDefaultOptions changes the options of the services daemons build
// from now on. Tests that use it must not run in parallel with others.
func SetDefaultOptions(o Options) (restore func()) {
	old := defaultOptions
	defaultOptions = o
	return func() { defaultOptions = old }
}
