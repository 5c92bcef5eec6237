package xsync

// Unregister lets the external tests undo Register.
func Unregister(name string) { backends.Delete(name) }
