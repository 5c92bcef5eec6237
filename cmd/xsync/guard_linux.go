package main

import "syscall"

// dieWithParent has the kernel send sig to the child when the thread that
// started it ends (see startLocked).
func dieWithParent(attr *syscall.SysProcAttr, sig syscall.Signal) { attr.Pdeathsig = sig }
