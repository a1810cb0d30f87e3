//go:build !unix

package proxy

import "net"

// connAlive cannot peek without blocking here; a closed connection shows
// up as an error when it is used.
func connAlive(net.Conn) bool { return true }
