// Command banyan moves a legacy monolith onto new services route by route
// and table by table, proving at each step that nothing changed.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes shared by every command.
const (
	exitOK        = 0
	exitFound     = 1 // differences found / check failed / invalid input found
	exitCannotRun = 2
)

// exitError carries the exit code a command ends with.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// failed marks err as a finding (exit 1) rather than a failure to run.
func failed(err error) error { return &exitError{code: exitFound, err: err} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the CLI and maps the outcome to an exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "banyan:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitCannotRun
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "banyan",
		Short:         "Move a legacy monolith onto new services without breaking customers or data",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		newServeCmd(),
		newValidateCmd(),
		newRoutesCmd(),
		newDemoCmd(),
		newDemoServiceCmd(),
		newCDCCmd(),
		newCheckCmd(),
		newReportCmd(),
		newCanaryCmd(),
		newXDSCmd(),
	)
	return root
}
