package cdc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/banyanhq/banyan/internal/progress"
	"github.com/banyanhq/banyan/routes"
	driver "github.com/go-sql-driver/mysql"
)

// SchemaError stops the stream: a source schema change the mapping cannot
// absorb. The checkpoint stays before the statement, so after the mapping
// and the target are updated, a new run checks the statement again.
type SchemaError struct {
	Table     string
	Statement string
	At        Position
	Why       string
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("schema change on %s stops the stream: %s\n  statement: %s\n  binlog position of the statement: %s (the checkpoint stays just before it)\n  update the mapping (cdc.tables) and the target table, then run `banyan cdc run` again", e.Table, e.Why, e.Statement, e.At)
}

// Pipeline copies and streams the mapped tables from source to target.
type Pipeline struct {
	cfg    routes.CDCConfig
	source *SourceDB
	binlog *BinlogSource
	target *Target
	maps   map[string]*TableMap // by source "db.table"
	order  []*TableMap          // config order
	log    *slog.Logger
	// Progress receives the copy's progress bar (nil: none).
	Progress io.Writer
	// Metrics, when set, are updated as batches land.
	Metrics *Metrics
}

// OpenDB opens a MySQL/MariaDB DSN with the session settings CDC relies
// on: UTC session time zone (TIMESTAMP values travel as UTC), temporal
// values as text, and client-side interpolation (one round trip per
// statement); the driver's default connection character set is utf8mb4.
func OpenDB(dsn string) (*sql.DB, error) {
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("dsn: %w", err)
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"
	cfg.InterpolateParams = true
	// Temporal values as text, the way the binlog carries them: a DATETIME
	// is a wall-clock reading, not an instant; converters decide its zone.
	cfg.ParseTime = false
	conn, err := driver.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("dsn: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(8)
	db.SetConnMaxLifetime(10 * time.Minute)
	return db, nil
}

// Open connects to both sides, checks the source's binlog settings and
// compiles the mapping against the source's tables.
func Open(ctx context.Context, cfg routes.CDCConfig, log *slog.Logger) (*Pipeline, error) {
	if log == nil {
		log = slog.Default()
	}
	zone, err := SourceZone(cfg)
	if err != nil {
		return nil, err
	}
	src, err := OpenDB(cfg.Source.DSN)
	if err != nil {
		return nil, fmt.Errorf("cdc source: %w", err)
	}
	dst, err := OpenDB(cfg.Target.DSN)
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("cdc target: %w", err)
	}
	p := &Pipeline{cfg: cfg, source: &SourceDB{DB: src, Flavor: cfg.Source.Flavor}, target: &Target{DB: dst, Pipeline: "default"}, maps: map[string]*TableMap{}, log: log}
	fail := func(err error) (*Pipeline, error) { p.Close(); return nil, err }
	if err := src.PingContext(ctx); err != nil {
		return fail(fmt.Errorf("cdc source unreachable: %w", err))
	}
	if err := dst.PingContext(ctx); err != nil {
		return fail(fmt.Errorf("cdc target unreachable: %w", err))
	}
	if err := p.source.CheckBinlog(ctx); err != nil {
		return fail(err)
	}
	if p.order, err = p.source.Maps(ctx, cfg.Tables, zone); err != nil {
		return fail(err)
	}
	for _, m := range p.order {
		p.maps[m.SourceName()] = m
	}
	p.binlog, err = NewBinlogSource(cfg.Source.DSN, cfg.Source.Flavor, cfg.Source.ServerID, cfg.Source.Position == "gtid")
	if err != nil {
		return fail(err)
	}
	p.binlog.Log = log
	p.binlog.Watch = func(schema, table string) bool { return p.maps[schema+"."+table] != nil }
	return p, nil
}

// SourceZone is the zone of legacy DATETIME values (cdc.source_timezone,
// default Local).
func SourceZone(cfg routes.CDCConfig) (*time.Location, error) {
	if cfg.SourceTimezone == "" {
		return time.Local, nil
	}
	z, err := time.LoadLocation(cfg.SourceTimezone)
	if err != nil {
		return nil, fmt.Errorf("cdc.source_timezone: %w", err)
	}
	return z, nil
}

// Close closes both database handles.
func (p *Pipeline) Close() {
	p.source.DB.Close()
	p.target.DB.Close()
}

// Target returns the target side, for status reads.
func (p *Pipeline) Target() *Target { return p.target }

// Run copies what is not copied yet, then streams until ctx ends (nil),
// a schema change stops it (*SchemaError), or the binlog it needs is gone
// (ErrBinlogPurged). Connection failures are retried with backoff from
// the checkpoint. With resnapshot, the copy starts over.
func (p *Pipeline) Run(ctx context.Context, resnapshot bool) error {
	err := p.run(ctx, resnapshot)
	var se *SchemaError
	var pe *permanentError
	if err != nil && ctx.Err() != nil && !errors.As(err, &se) && !errors.As(err, &pe) && !errors.Is(err, ErrBinlogPurged) {
		// Stopped in the middle of a step (setting up, saving the end of
		// the copy). What failed then is the stop's doing: the query
		// cancelled, or the transaction database/sql rolled back when ctx
		// ended (sql.ErrTxDone). Each save is one statement or one
		// transaction, so nothing is half written and the next Run resumes
		// from the checkpoint. That is the clean stop ctx asked for. A
		// schema stop, unmappable data or a purged binlog still reaches
		// the caller: the next Run would meet it again.
		return nil
	}
	return err
}

func (p *Pipeline) run(ctx context.Context, resnapshot bool) error {
	if err := p.target.Init(ctx); err != nil {
		return err
	}
	cp, ok, err := p.target.Checkpoint(ctx)
	if err != nil {
		return err
	}
	if err := p.reconcile(ctx, !ok || resnapshot); err != nil {
		return err
	}
	if !ok || resnapshot {
		start, err := p.source.Position(ctx)
		if err != nil {
			return err
		}
		if err := p.target.Reset(ctx, start); err != nil {
			return fmt.Errorf("start copy: %w", err)
		}
		p.log.Info("cdc: initial copy starts; the stream will replay from the position read before it", "position", start.String())
		cp = Checkpoint{Phase: PhaseCopy, Start: start, Applied: start}
	}
	if cp.Phase == PhaseCopy {
		// A lost connection during the copy is retried like one during
		// streaming; the copy resumes at the chunk after the last one saved.
		err := retry(ctx, p.log, "copy", func() error {
			for _, m := range p.order {
				if err := p.copyTable(ctx, m); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil || ctx.Err() != nil {
			return err
		}
		cp.Phase, cp.Applied = PhaseStream, cp.Start
		if err := p.target.SetPhase(ctx, cp); err != nil {
			return err
		}
		p.log.Info("cdc: initial copy done; streaming", "from", cp.Start.String())
	}
	return p.stream(ctx)
}

func (p *Pipeline) copyTable(ctx context.Context, m *TableMap) error {
	prog, err := p.target.Progress(ctx, m.SourceName())
	if err != nil {
		return err
	}
	if prog.Done {
		return nil
	}
	total, _ := p.source.Count(ctx, m)
	bar := progress.New(p.Progress, "copy "+m.SourceName(), "rows", total)
	bar.Add(prog.Rows)
	index := map[string]int{}
	for i, c := range m.Cols {
		index[c.Source] = i
	}
	for {
		rows, err := p.source.Chunk(ctx, m, prog.LastPK, p.cfg.ChunkRows)
		if err != nil {
			return err
		}
		mapped := make([][]any, len(rows))
		for i, r := range rows {
			if mapped[i], err = m.Row(index, r); err != nil {
				return &permanentError{fmt.Errorf("copy %s: %w", m.SourceName(), err)}
			}
		}
		if len(rows) > 0 {
			// The key of the last raw row, before any conversion.
			last := rows[len(rows)-1]
			prog.LastPK = make([]any, len(m.PK))
			for i, k := range m.PK {
				prog.LastPK[i] = last[k]
			}
		}
		prog.Rows += int64(len(rows))
		prog.Done = len(rows) < p.cfg.ChunkRows
		if err := p.target.CopyChunk(ctx, m, mapped, prog); err != nil {
			return err
		}
		bar.Add(int64(len(rows)))
		p.Metrics.copied(m.TargetName(), len(rows))
		if prog.Done {
			bar.Done()
			p.log.Info("cdc: table copied", "table", m.SourceName(), "rows", prog.Rows)
			return nil
		}
	}
}

// permanentError is a failure that the same input will always repeat.
type permanentError struct{ error }

func (e *permanentError) Unwrap() error { return e.error }

// retry runs f until it succeeds, ctx ends (nil) or it fails with an
// error a retry cannot fix (a mapping or schema problem), waiting with
// backoff between tries.
func retry(ctx context.Context, log *slog.Logger, what string, f func() error) error {
	backoff := 500 * time.Millisecond
	for {
		err := f()
		if err == nil || ctx.Err() != nil {
			return nil
		}
		var me *driver.MySQLError
		var pe *permanentError
		if errors.As(err, &me) || errors.As(err, &pe) {
			return err // refused or unmappable data: retrying will not help
		}
		log.Warn("cdc: "+what+" interrupted; retrying from the last saved chunk", "err", err, "retry_in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// stream applies the binlog from the checkpoint, reconnecting with
// backoff after connection failures.
func (p *Pipeline) stream(ctx context.Context) error {
	backoff := 500 * time.Millisecond
	for {
		progressed, err := p.streamOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var se *SchemaError
		switch {
		case errors.As(err, &se):
			return err
		case errors.Is(err, ErrBinlogPurged):
			return fmt.Errorf("%w: the target cannot be brought up to date from the binlog; run `banyan cdc run --resnapshot` to copy the tables again", err)
		}
		if progressed {
			backoff = 500 * time.Millisecond
		}
		p.log.Warn("cdc: stream interrupted; resuming from the checkpoint", "err", err, "retry_in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// streamOnce runs one connection's worth of streaming. progressed tells
// whether any batch landed.
func (p *Pipeline) streamOnce(ctx context.Context) (progressed bool, err error) {
	cp, ok, err := p.target.Checkpoint(ctx)
	if err != nil {
		return false, err
	}
	if !ok {
		return false, errors.New("checkpoint vanished from the target")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan Event, 1024)
	errc := make(chan error, 1)
	go func() { errc <- p.binlog.Stream(ctx, cp.Applied, events) }()

	var batch []*Tx
	rows := 0
	lastApply := time.Now()
	apply := func() error {
		if len(batch) == 0 {
			return nil
		}
		counts, err := p.target.Apply(ctx, p.maps, batch, cp)
		if err != nil {
			return err
		}
		progressed = true
		p.Metrics.applied(counts, cp.SourceTS)
		batch, rows, lastApply = batch[:0], 0, time.Now()
		return nil
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case ev := <-events:
			switch {
			case ev.Tx != nil:
				batch = append(batch, ev.Tx)
				rows += len(ev.Tx.Changes)
				cp.Applied, cp.SourceTS = ev.Tx.End, int64(ev.Tx.Timestamp)
				// Apply when the batch is full, or when the stream has
				// nothing more right now (and the batch carries rows, or
				// the checkpoint has not moved for a second).
				if rows >= p.cfg.BatchRows || (len(events) == 0 && (rows > 0 || time.Since(lastApply) > time.Second)) {
					if err := apply(); err != nil {
						return progressed, err
					}
				}
			case ev.DDL != nil:
				if err := apply(); err != nil {
					return progressed, err
				}
				if err := p.schemaChange(ctx, ev.DDL); err != nil {
					return progressed, err
				}
				cp.Applied, cp.SourceTS = ev.DDL.End, int64(ev.DDL.Timestamp)
				if err := p.target.SetPhase(ctx, cp); err != nil {
					return progressed, err
				}
			}
		case <-tick.C:
			if err := apply(); err != nil {
				return progressed, err
			}
			p.Metrics.idle(cp.SourceTS, len(events) == 0)
		case err := <-errc:
			// Complete transactions already received still land.
			if aerr := apply(); aerr != nil {
				return progressed, aerr
			}
			return progressed, err
		case <-ctx.Done():
			return progressed, ctx.Err()
		}
	}
}

var ddlTableRE = regexp.MustCompile("(?i)^\\s*(ALTER\\s+(?:ONLINE\\s+|IGNORE\\s+)*TABLE|DROP\\s+TABLE(?:\\s+IF\\s+EXISTS)?|TRUNCATE(?:\\s+TABLE)?|RENAME\\s+TABLE|CREATE\\s+(?:OR\\s+REPLACE\\s+)?TABLE(?:\\s+IF\\s+NOT\\s+EXISTS)?)\\s+((?:`[^`]+`|[\\w$]+)(?:\\s*\\.\\s*(?:`[^`]+`|[\\w$]+))?)")

// ddlTarget returns the statement's verb and its first table as db.table.
func ddlTarget(defaultSchema, stmt string) (verb, table string, ok bool) {
	m := ddlTableRE.FindStringSubmatch(stmt)
	if m == nil {
		return "", "", false
	}
	verb = strings.ToUpper(strings.Fields(m[1])[0])
	name := strings.ReplaceAll(m[2], "`", "")
	name = strings.ReplaceAll(name, " ", "")
	if !strings.Contains(name, ".") {
		name = defaultSchema + "." + name
	}
	return verb, name, true
}

// schemaChange decides whether a DDL can be absorbed: statements on tables
// that are not mapped, and ALTERs after which every copied column still
// exists with the same type (a new column, an index), go on; anything
// else on a mapped table stops the stream.
func (p *Pipeline) schemaChange(ctx context.Context, d *DDL) error {
	verb, table, ok := ddlTarget(d.Schema, d.Statement)
	if !ok {
		return nil
	}
	m := p.maps[table]
	if m == nil {
		return nil
	}
	stop := func(why string) error {
		return &SchemaError{Table: table, Statement: d.Statement, At: d.End, Why: why}
	}
	if verb != "ALTER" {
		return stop(fmt.Sprintf("%s on a mapped table", verb))
	}
	cols, err := p.source.Columns(ctx, m.SourceSchema, m.SourceTable)
	if err != nil {
		return err
	}
	now := map[string]string{}
	for _, c := range cols {
		now[c.Name] = c.DataType
	}
	for _, c := range m.Cols {
		t, ok := now[c.Source]
		switch {
		case !ok:
			return stop(fmt.Sprintf("mapped column %s no longer exists", c.Source))
		case t != c.DataType:
			return stop(fmt.Sprintf("mapped column %s changed type from %s to %s", c.Source, c.DataType, t))
		}
	}
	p.log.Info("cdc: schema change absorbed (mapped columns unchanged)", "table", table, "statement", d.Statement)
	return nil
}

// reconcile keeps the mapping of a running pipeline stable across
// restarts. Without names in the config, a mapping copies "every column
// but the skipped ones", which would silently change with the source's
// schema; so the mapped columns are recorded in the target at the first
// run, and later runs keep to them: a column added on the source since is
// not copied (absorbed) unless the config names it, and a recorded column
// that is gone or changed type stops the run until the operator updates
// the mapping (skip it) and the target.
func (p *Pipeline) reconcile(ctx context.Context, fresh bool) error {
	for i, m := range p.order {
		tm := p.cfg.Tables[i]
		compact, err := p.target.Compactable(ctx, m.TargetSchema, m.TargetTable)
		if err != nil {
			return err
		}
		m.Compact = compact
		if !fresh {
			stored, ok, err := p.target.MappedColumns(ctx, m.SourceName())
			if err != nil {
				return err
			}
			if ok {
				targetCols, err := p.target.ColumnNames(ctx, m.TargetSchema, m.TargetTable)
				if err != nil {
					return err
				}
				if err := keepMapped(m, tm, stored, targetCols); err != nil {
					return err
				}
			}
		}
		if err := p.target.SaveMappedColumns(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// keepMapped narrows m to the recorded columns plus those the config names
// explicitly, and refuses recorded columns that vanished or changed type.
// A recorded column that vanished from the source is let go once the
// operator has dealt with it: listed in skip, or dropped from the target.
func keepMapped(m *TableMap, tm routes.TableMapping, stored []ColMap, targetCols map[string]bool) error {
	now := map[string]ColMap{}
	for _, c := range m.Cols {
		now[c.Source] = c
	}
	stop := func(why string) error {
		return &SchemaError{Table: m.SourceName(), Statement: "(changed since the last run: the mapping recorded in the target no longer matches the source)", Why: why}
	}
	recorded := map[string]bool{}
	for _, sc := range stored {
		recorded[sc.Source] = true
		c, ok := now[sc.Source]
		switch {
		case !ok && (slices.Contains(tm.Skip, sc.Source) || !targetCols[strings.ToLower(sc.Target)]):
			// The operator took it out of the mapping or the target.
		case !ok:
			return stop(fmt.Sprintf("mapped column %s no longer exists on the source; drop %s from the target (or add %s to skip), then run again", sc.Source, sc.Target, sc.Source))
		case c.DataType != sc.DataType:
			return stop(fmt.Sprintf("mapped column %s changed type from %s to %s; adjust the target, then clear the recorded mapping with --resnapshot", sc.Source, sc.DataType, c.DataType))
		}
	}
	keyNames := make([]string, len(m.PK))
	for i, k := range m.PK {
		keyNames[i] = m.Cols[k].Source
	}
	var keep []ColMap
	for _, c := range m.Cols {
		_, named := tm.Columns[c.Source]
		if !recorded[c.Source] && !named && !slices.Contains(keyNames, c.Source) {
			continue // new on the source since the copy: absorbed, not copied
		}
		keep = append(keep, c)
	}
	m.Cols = keep
	for i, name := range keyNames {
		m.PK[i] = slices.IndexFunc(keep, func(c ColMap) bool { return c.Source == name })
	}
	return nil
}
