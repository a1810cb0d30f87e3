package cdc

import (
	"context"
	"fmt"
	"time"

	"github.com/banyanhq/banyan/routes"
)

// errNoSuchTable is MySQL's ER_NO_SUCH_TABLE.
const errNoSuchTable = 1146

// Status is what `banyan cdc status` reports.
type Status struct {
	Phase      string          `json:"phase"`
	Applied    Position        `json:"applied"`
	Source     Position        `json:"source"`
	CaughtUp   bool            `json:"caught_up"`
	LagSeconds float64         `json:"lag_seconds"`
	UpdatedAt  time.Time       `json:"updated_at"`
	Copy       []TableProgress `json:"copy"`
	// Resnapshot is each table's delete pass of the last resnapshot:
	// target rows looked up on the source and deleted (none after a
	// first copy).
	Resnapshot []PruneProgress             `json:"resnapshot,omitempty"`
	Applies    map[string]map[string]int64 `json:"rows_applied"`
}

// ReadStatus reads the checkpoint and counters from the target and the
// current position from the source.
func ReadStatus(ctx context.Context, cfg routes.CDCConfig) (*Status, error) {
	src, err := OpenDB(cfg.Source.DSN)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	dst, err := OpenDB(cfg.Target.DSN)
	if err != nil {
		return nil, err
	}
	defer dst.Close()
	t := &Target{DB: dst, Pipeline: "default"}
	cp, ok, err := t.Checkpoint(ctx)
	if err != nil {
		// Only a missing checkpoint table means cdc run never ran here; an
		// unreachable target or a refused login must not be blamed on that.
		if serverError(err, errNoSuchTable) {
			return nil, fmt.Errorf("%w (has `banyan cdc run` ever run against this target?)", err)
		}
		return nil, fmt.Errorf("cdc target: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("no checkpoint in the target: `banyan cdc run` has not started yet")
	}
	st := &Status{Phase: cp.Phase, Applied: cp.Applied, UpdatedAt: cp.UpdatedAt}
	if st.Copy, err = t.Copies(ctx); err != nil {
		return nil, err
	}
	if st.Resnapshot, err = t.Prunes(ctx); err != nil {
		return nil, err
	}
	if st.Applies, err = t.Stats(ctx); err != nil {
		return nil, err
	}
	if st.Source, err = (&SourceDB{DB: src, Flavor: cfg.Source.Flavor}).Position(ctx); err != nil {
		return nil, err
	}
	if cfg.Source.Position == "gtid" {
		// Compared as sets: MariaDB lists domains in its own order
		// (0, 2, 10), which is not the text order banyan writes them in.
		st.CaughtUp = reached(cfg.Source.Flavor, true, cp.Applied, st.Source)
	} else {
		st.CaughtUp = st.Source.File == cp.Applied.File && st.Source.Pos == cp.Applied.Pos
	}
	if !st.CaughtUp && cp.SourceTS > 0 {
		st.LagSeconds = time.Since(time.Unix(cp.SourceTS, 0)).Seconds()
	}
	return st, nil
}
