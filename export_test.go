package xsync

// Unregister lets the external tests undo Register.
var Unregister = unregister
