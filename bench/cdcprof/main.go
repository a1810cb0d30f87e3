// Command cdcprof runs the same pipeline as `banyan cdc run --config FILE`
// (cdc.Open + Pipeline.Run, no metrics listener) under a CPU profile, for
// bench/cdc.sh PROFILE=1: `banyan cdc run` has no profiling flag. It stops
// on SIGTERM/SIGINT and writes the profile then.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/banyanhq/banyan/cdc"
	"github.com/banyanhq/banyan/routes"
)

func main() {
	path := flag.String("config", "", "banyan config with a cdc section")
	out := flag.String("cpuprofile", "cdc.cpu.pprof", "CPU profile written on exit")
	flag.Parse()
	if err := run(*path, *out); err != nil {
		fmt.Fprintln(os.Stderr, "cdcprof:", err)
		os.Exit(1)
	}
}

func run(path, out string) error {
	cfg, err := routes.Load(path, cdc.CheckConfig)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	defer pprof.StopCPUProfile()
	p, err := cdc.Open(ctx, cfg.CDC, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		return err
	}
	defer p.Close()
	return p.Run(ctx, false)
}
