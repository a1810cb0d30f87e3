package cdc

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/routes"
)

// TestReadStatus_Errors: `banyan cdc status` suggests that cdc run never
// ran only when the target has no checkpoint table; a target it cannot
// reach is named as such, without that hint.
func TestReadStatus_Errors(t *testing.T) {
	t.Run("target unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		cfg := routes.CDCConfig{
			Source: routes.CDCSource{DSN: "root@tcp(" + addr + ")/shop"},
			Target: routes.CDCTarget{DSN: "root@tcp(" + addr + ")/orders"},
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = ReadStatus(ctx, cfg)
		if err == nil {
			t.Fatal("ReadStatus with nothing listening: no error")
		}
		if got := err.Error(); strings.Contains(got, "ever run") || !strings.Contains(got, "cdc target") || !strings.Contains(got, addr) {
			t.Errorf("error = %q, want it to name the cdc target at %s and not ask whether cdc run ever ran", got, addr)
		}
	})
	t.Run("no checkpoint table", func(t *testing.T) {
		srcName, dstName, _, _ := dbs(t)
		cfg := routes.CDCConfig{
			Source: routes.CDCSource{DSN: pair.Source.DSN(srcName)},
			Target: routes.CDCTarget{DSN: pair.Target.DSN(dstName)},
		}
		_, err := ReadStatus(t.Context(), cfg)
		if err == nil || !strings.Contains(err.Error(), "has `banyan cdc run` ever run against this target?") {
			t.Errorf("error = %v, want the hint that cdc run may never have run", err)
		}
	})
}
