//go:build !linux

package main

import (
	"errors"
	"time"
)

func runRaw(string, int, time.Duration, int, time.Duration) (result, error) {
	return result{}, errors.New("the raw client needs Linux (epoll, timerfd); use -client nethttp")
}
