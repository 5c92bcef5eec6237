// Package registry is the one pattern behind xsync's two registries: backend
// instances by name (package xsync) and URL openers by scheme (recorded by
// backend.RegisterScheme, read by xsync.Open). Both fail loudly on
// misconfiguration, as database/sql's driver registry does.
package registry

import (
	"fmt"
	"slices"
	"sync"
)

// Registry maps names to values. It is safe for concurrent use.
type Registry[T any] struct {
	who  string // the exported function that registers, for panic messages
	kind string // what the names name, for panic messages
	mu   sync.RWMutex
	m    map[string]T
}

// New returns an empty registry of values of the given kind ("backend",
// "URL scheme"), filled by the exported function who ("Register").
func New[T any](who, kind string) *Registry[T] {
	return &Registry[T]{who: who, kind: kind, m: make(map[string]T)}
}

// Register records v under name. It panics if name is taken: a
// misconfiguration must fail at start-up.
func (r *Registry[T]) Register(name string, v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.m[name]; dup {
		panic(fmt.Sprintf("xsync: %s called twice for %s %q", r.who, r.kind, name))
	}
	r.m[name] = v
}

// Lookup returns the value recorded under name.
func (r *Registry[T]) Lookup(name string) (T, bool) {
	r.mu.RLock()
	v, ok := r.m[name] // cannot panic: no defer on the hot path
	r.mu.RUnlock()
	return v, ok
}

// Names returns the recorded names, sorted.
func (r *Registry[T]) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.m))
	for name := range r.m {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Swap records v under name whether or not name is taken, and returns a
// function that restores what was there before (or removes name). The
// function may be called more than once; only the first call acts.
func (r *Registry[T]) Swap(name string, v T) (restore func()) {
	r.mu.Lock()
	prev, had := r.m[name]
	r.m[name] = v
	r.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if had {
				r.m[name] = prev
			} else {
				delete(r.m, name)
			}
		})
	}
}

// Delete removes name.
func (r *Registry[T]) Delete(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, name)
}

// Schemes holds the URL openers that backend.RegisterScheme records, as
// backend.OpenFunc values; xsync.Open reads them. It lives here, not in
// package backend, so that the contract package exports only what
// implementers need.
var Schemes = New[any]("backend.RegisterScheme", "URL scheme")
