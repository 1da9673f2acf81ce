package workspace

import (
	"errors"
	"path/filepath"
	"sync"
)

// WriteInterceptor takes over writes to a file: a service that holds a
// file's content (a document being edited together) claims its path, and
// every write through [FS.Write] or a finished upload is offered to it
// instead of the disk.
//
// InterceptWrite is called from the writer's goroutine with the file's
// canonical workspace-relative path and the new content (which it may
// keep). It reports handled=false to let the write go to disk as usual;
// with handled=true, err is the write's outcome. It must not call
// [FS.Write] for the same path (use [FS.WriteDirect]). Implementations must
// be comparable (a pointer, usually): the registry tells them apart with ==.
type WriteInterceptor interface {
	InterceptWrite(path string, content []byte) (handled bool, err error)
}

// ErrClaimed is returned by [Interceptors.Register] for a path another
// interceptor holds.
var ErrClaimed = errors.New("path already claimed by another interceptor")

// Interceptors is the registry of write interceptors of one workspace. It
// is safe for concurrent use.
type Interceptors struct {
	// mu guards the following.
	mu     sync.RWMutex
	byPath map[string]WriteInterceptor
}

// registries holds one registry per workspace root, so that every service
// of a daemon (each opens its own [FS]) sees the same claims.
var registries sync.Map // host path of the root → *Interceptors

// InterceptorsFor returns the registry of the workspace rooted at root.
func InterceptorsFor(root string) *Interceptors {
	key := filepath.Clean(root)
	if abs, err := filepath.Abs(key); err == nil {
		key = abs
	}
	if resolved, err := filepath.EvalSymlinks(key); err == nil {
		key = resolved
	}
	r, _ := registries.LoadOrStore(key, &Interceptors{byPath: make(map[string]WriteInterceptor)})
	return r.(*Interceptors)
}

// Register makes wi the interceptor of path, a canonical path as
// [FS.Resolve] returns it. Registering the same interceptor again is a
// no-op; a path held by another is [ErrClaimed].
func (r *Interceptors) Register(path string, wi WriteInterceptor) error {
	if wi == nil {
		return errors.New("workspace: nil interceptor")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if held, ok := r.byPath[path]; ok && held != wi {
		return ErrClaimed
	}
	r.byPath[path] = wi
	return nil
}

// Unregister releases path if wi holds it.
func (r *Interceptors) Unregister(path string, wi WriteInterceptor) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byPath[path] == wi {
		delete(r.byPath, path)
	}
}

func (r *Interceptors) lookup(path string) WriteInterceptor {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byPath[path]
}

// Intercept resolves p and registers wi for it. The returned function
// unregisters it.
func (w *FS) Intercept(p string, wi WriteInterceptor) (unregister func(), err error) {
	rel, err := w.Resolve(p)
	if err != nil {
		return nil, err
	}
	if err := w.hooks.Register(rel, wi); err != nil {
		return nil, &Error{Op: "intercept", Path: p, Err: err}
	}
	return func() { w.hooks.Unregister(rel, wi) }, nil
}
