//go:build !(linux && (amd64 || arm64))

package uring

import "time"

// Loop is a stand-in where this package has no io_uring (other systems,
// and Linux on other than amd64 and arm64): Run fails.
type Loop struct{}

// Task is a stand-in where there is no io_uring.
type Task struct{}

func Probe() error                                       { return ErrUnsupported }
func New(entries uint32) *Loop                           { return &Loop{} }
func (l *Loop) Run() error                               { return ErrUnsupported }
func (l *Loop) Go(fn func(*Task)) error                  { return ErrUnsupported }
func (l *Loop) Close()                                   {}
func (t *Task) Block(f func())                           { f() }
func (t *Task) Recv(int, []byte, time.Time) (int, error) { return 0, ErrUnsupported }
func (t *Task) Send(int, []byte, time.Time) (int, error) { return 0, ErrUnsupported }
func (t *Task) SendRecv(int, []byte, time.Time, int, []byte, time.Time) (int, error, int, error) {
	return 0, ErrUnsupported, 0, ErrUnsupported
}
