//go:build linux && (amd64 || arm64)

package uring

// HeldP reports whether l's last wait for completions was made holding
// its P.
func HeldP(l *Loop) bool { return l.held.Load() }
