//go:build !linux

package main

import "errors"

func serveEpoll(addr, backend string) error {
	return errors.New("-mode epoll needs Linux")
}

func serveCoro(addr, backend string) error {
	return errors.New("-mode coro needs Linux")
}
