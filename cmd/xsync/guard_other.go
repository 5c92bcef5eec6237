//go:build !linux

package main

import "syscall"

// dieWithParent does nothing where the kernel has no parent-death signal:
// the guard notices its parent's death by polling (guardPoll).
func dieWithParent(*syscall.SysProcAttr, syscall.Signal) {}
