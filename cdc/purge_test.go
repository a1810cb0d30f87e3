package cdc

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/routes"
)

// TestPipeline_PurgedBinlog: when the source no longer has the binlog at
// the checkpoint, Run stops with ErrBinlogPurged and says to resnapshot;
// with resnapshot the target is copied again and ends equal — the row
// deleted while the binlog was lost is gone from the target too.
func TestPipeline_PurgedBinlog(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE p (id INT PRIMARY KEY, v VARCHAR(20))`, `INSERT INTO p VALUES (1, 'a'), (2, 'b')`)
	mustExec(t, dst, `CREATE TABLE p (id INT PRIMARY KEY, v VARCHAR(20))`)
	cfg := routes.CDCConfig{
		Source:    routes.CDCSource{DSN: pair.Source.DSN(srcName), Flavor: "mariadb", Position: "gtid", ServerID: 9411},
		Target:    routes.CDCTarget{DSN: pair.Target.DSN(dstName)},
		Tables:    []routes.TableMapping{{Source: srcName + ".p", Target: dstName + ".p"}},
		BatchRows: 100, ChunkRows: 100,
	}
	s := func() []string { return dump(t, src, "p", "id") }
	d := func() []string { return dump(t, dst, "p", "id") }
	stop := runPipeline(t, cfg)
	waitEqual(t, 20*time.Second, s, d)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	// While banyan is down, changes land in a binlog file that is purged.
	mustExec(t, src, `INSERT INTO p VALUES (3, 'c')`, `UPDATE p SET v = 'A' WHERE id = 1`, `DELETE FROM p WHERE id = 2`)
	mustExec(t, src, `FLUSH BINARY LOGS`)
	purgeBefore(t, src, masterFile(t, src))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := Open(ctx, cfg, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = p.Run(ctx, false)
	if !errors.Is(err, ErrBinlogPurged) || !strings.Contains(err.Error(), "--resnapshot") {
		t.Fatalf("Run after purge = %v, want ErrBinlogPurged telling to use --resnapshot", err)
	}

	rctx, rcancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx, true) }()
	waitEqual(t, 20*time.Second, s, d)
	rcancel()
	if err := <-done; err != nil {
		t.Fatalf("Run --resnapshot: %v", err)
	}
}

type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
