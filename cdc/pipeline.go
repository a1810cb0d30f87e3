package cdc

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	// fresh is when the stream last had nothing waiting, or the source
	// commit time of the last batch applied: while it cannot stream, the
	// lag metric counts from there.
	fresh time.Time
	// pruneLookedUp, when set (tests), sees each batch of a resnapshot's
	// delete pass after the source said which keys it lacks, before they
	// are deleted from the target.
	pruneLookedUp func(m *TableMap, absent [][]any)
}

// OpenDB opens a MySQL/MariaDB DSN with the session settings CDC relies
// on: UTC session time zone (TIMESTAMP values travel as UTC), temporal
// values as text, and client-side interpolation (one round trip per
// statement); the driver's default connection character set is utf8mb4.
func OpenDB(dsn string) (*sql.DB, error) { return openDB(dsn, false, false) }

// openDB is OpenDB; strict adds STRICT_ALL_TABLES to the session's
// sql_mode, for the pipeline's target: a value the target cannot hold is
// an error, never silently cut or replaced, and upsert's guard relies on
// it. utf8 makes the connection's character set utf8mb4 whatever the DSN
// asks, for the pipeline's own sessions: they send and read text as
// UTF-8. A source DSN with charset=latin1 (a legacy database's DSN often
// has it) made the server read the resnapshot's UTF-8 key 'Åsa' as
// 'Ã…sa', which the source lacks, and the row was deleted. Other uses
// (canary, check) keep the server's own mode and the DSN's character set.
func openDB(dsn string, strict, utf8 bool) (*sql.DB, error) {
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("dsn: %w", err)
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"
	if strict {
		cfg.Params["sql_mode"] = "CONCAT(@@sql_mode, ',STRICT_ALL_TABLES')"
	}
	if utf8 {
		collation := ""
		if strings.HasPrefix(strings.ToLower(cfg.Collation), "utf8mb4_") {
			collation = cfg.Collation
		}
		if err := cfg.Apply(driver.Charset("utf8mb4", collation)); err != nil {
			return nil, fmt.Errorf("dsn: %w", err)
		}
		for name := range cfg.Params {
			switch strings.ToLower(name) {
			case "character_set_client", "character_set_connection", "character_set_results", "collation_connection":
				delete(cfg.Params, name)
			}
		}
	}
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
	if err := CheckSpillDir(cfg.SpillDir); err != nil {
		return nil, fmt.Errorf("cdc.spill_dir: %w", err)
	}
	src, err := openDB(cfg.Source.DSN, false, true)
	if err != nil {
		return nil, fmt.Errorf("cdc source: %w", err)
	}
	dst, err := openDB(cfg.Target.DSN, true, true)
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
	p.binlog.SpillRows, p.binlog.SpillDir = cmp.Or(cfg.SpillRows, routes.DefaultSpillRows), cfg.SpillDir
	p.binlog.Watch = func(schema, table string) bool { return p.maps[schema+"."+table] != nil }
	p.binlog.Mapped = func(schema, table string) bool { return p.mapped(schema+"."+table) != nil }
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

// sharedKeys is the settler of the copy and of the stream until it passes
// the copy's end: the target's unique keys the source enforces too, read
// from both sides when a collision happens (a source key dropped since is
// not trusted).
func (p *Pipeline) sharedKeys(ctx context.Context, m *TableMap) ([][]int, error) {
	return sharedUniqueKeys(ctx, p.source.DB, p.target.DB, m)
}

// Close closes both database handles.
func (p *Pipeline) Close() {
	p.source.DB.Close()
	p.target.DB.Close()
}

// Target returns the target side, for status reads.
func (p *Pipeline) Target() *Target { return p.target }

// Run copies what is not copied yet, then streams until ctx ends (nil),
// a schema change stops it (*SchemaError), a row cannot be mapped or the
// target refuses it for good (an error naming the table, the row's key and
// the cause; the checkpoint stays before the row), or the binlog it needs
// is gone (ErrBinlogPurged). Connection failures and the server errors a
// later try can get past (deadlock, lock wait timeout, a read-only target
// during a failover) are retried with backoff from the checkpoint. With
// resnapshot, the copy starts over.
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
		// The stream will start here. This position is read before the
		// copy reads a row and before a resnapshot's delete pass asks the
		// source about a key: whatever changes on the source after either
		// looked (a row inserted after the pass found its key absent, or
		// deleted after the copy read it) is after this position, and the
		// stream replays it. Reading it later would lose those changes.
		start, err := p.source.Position(ctx)
		if err != nil {
			return err
		}
		var prune []string
		if resnapshot {
			for _, m := range p.order {
				prune = append(prune, m.SourceName())
			}
		}
		if err := p.target.Reset(ctx, start, prune); err != nil {
			return fmt.Errorf("start copy: %w", err)
		}
		p.log.Info("cdc: initial copy starts; the stream will replay from the position read before it", "position", start.String(), "resnapshot", resnapshot)
		if cp, _, err = p.target.Checkpoint(ctx); err != nil {
			return err
		}
	}
	if cp.Phase == PhaseCopy {
		// A lost connection during the copy is retried like one during
		// streaming; the copy resumes at the chunk after the last one
		// saved. A resnapshot first removes, from every table, the target
		// rows whose key the source no longer has (prune.go), a table
		// before the tables it references on the target, then copies the
		// tables in config order.
		err := retry(ctx, p.log, "copy", func() error {
			order, err := p.pruneOrder(ctx)
			if err != nil {
				return err
			}
			for _, m := range order {
				if err := p.pruneTable(ctx, m); err != nil {
					return err
				}
			}
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
		// Read after the copy's last row: until the stream gets there, a
		// target row may be in a later state than the replay (settle.go).
		end, err := p.source.Position(ctx)
		if err != nil {
			return err
		}
		cp.Phase, cp.Applied, cp.CopyEnd = PhaseStream, cp.Start, end
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
		before := prog.Rows
		rows, err := p.source.Chunk(ctx, m, prog.LastPK, p.cfg.ChunkRows)
		if err != nil {
			return err
		}
		mapped := make([][]any, len(rows))
		for i, r := range rows {
			textAsString(m, r)
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
		if err := p.target.CopyChunk(ctx, m, mapped, prog, p.sharedKeys); errors.Is(err, errCopyMoved) {
			// A killed run's last chunk landed after this run read the
			// progress: go on from where it got to.
			p.log.Warn("cdc: the copy's saved progress moved on under this run (a run before it committed late); reading it again", "table", m.SourceName())
			if prog, err = p.target.Progress(ctx, m.SourceName()); err != nil {
				return err
			}
			if prog.Rows < before {
				// Not a late chunk: another run started the copy over
				// (a resnapshot's Reset), with a checkpoint this run
				// has not read. The next Run reads it.
				return &permanentError{fmt.Errorf("copy %s: its saved progress went back from %d to %d rows: another run started the copy over; run again", m.SourceName(), before, prog.Rows)}
			}
			bar.Add(prog.Rows - before)
			if prog.Done {
				bar.Done()
				return nil
			}
			continue
		} else if err != nil {
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

// textAsString turns the text values of a copied row (in m.Cols order)
// from the []byte the driver reads into strings. The server sent them as
// utf8mb4; written back as []byte they went as _binary literals, which a
// target column in another character set (latin1) stored byte for byte,
// as mojibake, where a string is converted to the column's character set.
// Other columns (binary, BIT, spatial) keep their bytes.
func textAsString(m *TableMap, row []any) {
	for i, c := range m.Cols {
		if b, ok := row[i].([]byte); ok {
			row[i] = QueryArg(c.DataType, b)
		}
	}
}

// Stopped reports whether err is Run stopping on what the source sent: a
// schema change, a row the mapping or the target refuses, or an XA
// transaction. The operator must act; running again stops again until then.
func Stopped(err error) bool {
	var se *SchemaError
	var pe *permanentError
	return errors.As(err, &se) || errors.As(err, &pe)
}

// permanentError is a failure that the same input will always repeat.
type permanentError struct{ error }

func (e *permanentError) Unwrap() error { return e.error }

// permanent reports whether retrying err cannot help: a row the mapping
// cannot convert (*RowError), a stop decided below (*permanentError), or
// a server's refusal (a MySQL error other than transientCodes: a value too
// long or out of range, an invalid string, a NULL into NOT NULL, a
// duplicate on a unique key the source does not have, a missing table).
func permanent(err error) bool {
	var pe *permanentError
	var re *RowError
	var me *driver.MySQLError
	switch {
	case errors.As(err, &pe), errors.As(err, &re):
		return true
	case errors.As(err, &me):
		return !transientCodes[me.Number]
	}
	return false // a lost connection (2006, 2013 and the like are client-side errors)
}

// transientCodes are the server errors a later try can get past.
var transientCodes = map[uint16]bool{
	1020: true, // record changed since last read (innodb_snapshot_isolation)
	1040: true, // too many connections
	1047: true, // unknown command (a Galera node not ready)
	1180: true, // error during commit
	1412: true, // table definition changed, retry the transaction
	1615: true, // statement needs to be re-prepared
	1637: true, // too many active concurrent transactions
	1053: true, // server shutdown in progress
	1158: true, // network read error
	1159: true, // network read timeout
	1160: true, // network write error
	1161: true, // network write timeout
	1203: true, // too many connections for the user
	1205: true, // lock wait timeout
	1213: true, // deadlock
	1290: true, // --read-only (a primary demoted during a failover)
	1317: true, // query interrupted
	1792: true, // read-only transaction
	1836: true, // read-only mode
	1927: true, // connection killed (MariaDB)
	1969: true, // max_statement_time exceeded (MariaDB)
	3024: true, // max_execution_time exceeded (MySQL)
	4031: true, // disconnected for inactivity (MySQL 8.0.24+)
}

// retry runs f until it succeeds, ctx ends (nil) or it fails with an
// error a retry cannot fix (permanent), waiting with backoff between tries.
func retry(ctx context.Context, log *slog.Logger, what string, f func() error) error {
	backoff := 500 * time.Millisecond
	for {
		err := f()
		if err == nil || ctx.Err() != nil {
			return nil
		}
		if permanent(err) {
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
// backoff after connection failures and other transient errors.
func (p *Pipeline) stream(ctx context.Context) error {
	backoff := 500 * time.Millisecond
	p.fresh = time.Now()
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
		case permanent(err):
			// The same event would fail the same way forever while the lag
			// grows: stop, with the checkpoint before it.
			var pe *permanentError
			if !errors.As(err, &pe) {
				err = &permanentError{fmt.Errorf("stream: %w", err)}
			}
			return err
		}
		if progressed {
			backoff = 500 * time.Millisecond
		}
		p.log.Warn("cdc: stream interrupted; resuming from the checkpoint", "err", err, "retry_in", backoff)
		// The lag grows while the stream is down (it stayed at its last
		// value, 0 for a pipeline that was caught up, however long the
		// target or the source was gone).
		p.Metrics.stalled(p.fresh)
		wait := time.NewTimer(backoff)
		tick := time.NewTicker(time.Second)
	waiting:
		for {
			select {
			case <-wait.C:
				break waiting
			case <-tick.C:
				p.Metrics.stalled(p.fresh)
			case <-ctx.Done():
				wait.Stop()
				tick.Stop()
				return nil
			}
		}
		tick.Stop()
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
	// Changes held in memory between the stream and the apply: a batch
	// being applied, and what waits behind it.
	gate := newRowGate(4 * max(p.cfg.BatchRows, p.binlog.SpillRows))
	streamed := make(chan struct{})
	go func() {
		defer close(streamed)
		errc <- p.binlog.stream(ctx, cp.Applied, events, gate)
	}()

	var batch []*Tx
	defer func() {
		// Spill files of transactions not applied go now, not when the
		// garbage collector gets to them: the next run reads and spills
		// the same transactions again.
		cancel()
		<-streamed
		for _, tx := range batch {
			tx.Release()
		}
		for {
			select {
			case ev := <-events:
				if ev.Tx != nil {
					ev.Tx.Release()
				}
			default:
				return
			}
		}
	}()
	rows := 0
	lastApply := time.Now()
	saved, savedText := cp.Applied, cp.appliedText // the checkpoint the target holds
	apply := func() error {
		if len(batch) == 0 {
			return nil
		}
		var shared settler
		if !cp.CopyEnd.IsZero() && !reached(p.cfg.Source.Flavor, p.cfg.Source.Position == "gtid", saved, cp.CopyEnd) {
			shared = p.sharedKeys
		}
		counts, err := p.target.Apply(ctx, p.maps, batch, savedText, cp, shared)
		if err != nil {
			if permanent(err) && ctx.Err() == nil {
				return p.refused(ctx, batch, saved, err, shared)
			}
			return err
		}
		saved, savedText = cp.Applied, positionText(cp.Applied)
		progressed = true
		if t := time.Unix(cp.SourceTS, 0); t.After(p.fresh) {
			p.fresh = t
		}
		p.Metrics.applied(counts, cp.SourceTS)
		for _, tx := range batch {
			if size := tx.SpilledBytes(); size > 0 {
				p.Metrics.spilled(size)
				p.log.Info("cdc: applied a source transaction larger than cdc.spill_rows through its spill file",
					"changes", tx.Len(), "spilled_bytes", size, "end", tx.End.String())
			}
			tx.Release()
			gate.release(tx.held)
		}
		clear(batch)
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
				rows += ev.Tx.Len()
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
				saved, savedText = cp.Applied, positionText(cp.Applied)
			}
		case <-tick.C:
			if err := apply(); err != nil {
				return progressed, err
			}
			if len(events) == 0 {
				p.fresh = time.Now()
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

// refused is the error for a batch that cannot be applied for good: a row
// the mapping cannot convert, or one the target refuses. It names the
// source table and the row's key (for a refusal, found by refusedRow) and
// where the checkpoint stays, so nothing is lost once the operator has
// fixed the cause and runs again.
func (p *Pipeline) refused(ctx context.Context, batch []*Tx, saved Position, err error, shared settler) error {
	var re *RowError
	if !errors.As(err, &re) {
		if table, key := p.refusedRow(ctx, batch, err, shared); table != "" {
			err = fmt.Errorf("%s row %s: %w", table, key, err)
		}
	}
	return &permanentError{fmt.Errorf("stream stopped: %w\n  the checkpoint stays at %s, before the transaction holding that row\n  fix the row on the source, or the mapping (cdc.tables) or the target table, then run `banyan cdc run` again", err, saved)}
}

// refusedRow finds the change the target refuses with the same server
// error as the batch, by applying the batch's changes one at a time in a
// target transaction that is rolled back. It returns the change's source
// table and key, or "" when no single change reproduces the error.
func (p *Pipeline) refusedRow(ctx context.Context, batch []*Tx, batchErr error, shared settler) (table, key string) {
	var want *driver.MySQLError
	if !errors.As(batchErr, &want) {
		return "", ""
	}
	tx, err := p.target.DB.BeginTx(ctx, nil)
	if err != nil {
		return "", ""
	}
	defer tx.Rollback()
	stop := errors.New("stop") // found the row, or another error: look no further
	for _, stx := range batch {
		err := stx.Each(func(c Change) error {
			m := p.maps[c.Schema+"."+c.Table]
			if m == nil {
				return nil
			}
			index := columnIndex(c.Columns)
			err := applyChange(ctx, tx, m, index, c, shared)
			var me *driver.MySQLError
			switch {
			case errors.As(err, &me) && me.Number == want.Number:
				src := c.After
				if c.Op == Delete {
					src = c.Before
				}
				table, key = m.SourceName(), m.sourceKey(index, src)
				return stop
			case err != nil:
				return stop
			}
			return nil
		})
		if err != nil {
			return table, key
		}
	}
	return "", ""
}

// applyChange applies one row change on its own, as Target.Apply would.
func applyChange(ctx context.Context, x execer, m *TableMap, index map[string]int, c Change, shared settler) error {
	var moved []any
	return eachWrite(m, index, c, func(op Op, row []any) error {
		switch {
		case op == Update && m.Compact:
			return remove(ctx, x, m, [][]any{row}, shared)
		case op == Update:
			moved = row
			return nil
		case moved != nil:
			return rekey(ctx, x, m, moved, row, shared)
		case op == Delete:
			return remove(ctx, x, m, [][]any{row}, shared)
		}
		return upsert(ctx, x, m, [][]any{row}, shared)
	})
}

// ddlStmt is what schemaChange needs to know of a statement.
type ddlStmt struct {
	// Verb is what the statement does to Tables: ALTER (checked against
	// the source's columns), or anything else (CREATE, DROP, TRUNCATE,
	// RENAME, or an ALTER that moves rows or the table away, such as
	// "ALTER TABLE … DROP PARTITION"), which stops a mapped table.
	Verb string
	// Tables are every table the statement names, as db.table: each one
	// dropped, and both sides of each rename.
	Tables []string
	// Schema is the database a DROP DATABASE takes, with all its tables.
	Schema string
	// Unread: a table statement whose table names could not be read.
	// Words are then its identifiers, to look for mapped names in.
	Unread bool
	Words  []string
}

// parseDDL reads which tables a statement changes. Comments are ignored
// (tools and ORMs prefix them: "/* ApplicationName=DBeaver */ ALTER …",
// gh-ost's "rename /* gh-ost */ table …"), except executable ones
// (/*!40005 TEMPORARY */), whose text the server runs. Statements on
// other objects (indexes, views, triggers, users) name no tables.
func parseDDL(defaultSchema, stmt string) ddlStmt {
	p := &ddlParser{toks: ddlTokens(stmt), schema: defaultSchema}
	switch {
	case p.kw("ALTER"):
		for p.kw("ONLINE", "OFFLINE", "IGNORE") {
		}
		if !p.kw("TABLE") {
			return ddlStmt{}
		}
		p.ifExists()
		return p.alter()
	case p.kw("CREATE"):
		replace := p.kw("OR")
		if replace && !p.kw("REPLACE") {
			return p.unread("CREATE")
		}
		if p.kw("DATABASE", "SCHEMA") {
			if !replace {
				return ddlStmt{}
			}
			return p.database("CREATE OR REPLACE DATABASE")
		}
		if p.kw("TEMPORARY") || !p.kw("TABLE") {
			return ddlStmt{}
		}
		p.ifExists()
		return p.tables("CREATE", false)
	case p.kw("DROP"):
		if p.kw("DATABASE", "SCHEMA") {
			p.ifExists()
			return p.database("DROP DATABASE")
		}
		if p.kw("TEMPORARY") || !p.kw("TABLE", "TABLES") {
			return ddlStmt{}
		}
		p.ifExists()
		return p.tables("DROP", true)
	case p.kw("TRUNCATE"):
		p.kw("TABLE")
		return p.tables("TRUNCATE", false)
	case p.kw("RENAME"):
		if !p.kw("TABLE", "TABLES") {
			return ddlStmt{}
		}
		p.ifExists()
		return p.rename()
	}
	return ddlStmt{}
}

// ddlTarget returns a table statement's verb and its first table as
// db.table.
func ddlTarget(defaultSchema, stmt string) (verb, table string, ok bool) {
	d := parseDDL(defaultSchema, stmt)
	if len(d.Tables) == 0 {
		return "", "", false
	}
	return d.Verb, d.Tables[0], true
}

type ddlParser struct {
	toks   []ddlToken
	i      int
	schema string // the statement's default database
}

// kw consumes the next token if it is one of the keywords.
func (p *ddlParser) kw(words ...string) bool {
	if p.i < len(p.toks) && p.toks[p.i].kind == 'w' {
		for _, w := range words {
			if strings.EqualFold(p.toks[p.i].text, w) {
				p.i++
				return true
			}
		}
	}
	return false
}

// punct consumes the next token if it is the punctuation c.
func (p *ddlParser) punct(c byte) bool {
	if p.i < len(p.toks) && p.toks[p.i].kind == c {
		p.i++
		return true
	}
	return false
}

// ifExists consumes IF EXISTS or IF NOT EXISTS.
func (p *ddlParser) ifExists() {
	if p.kw("IF") {
		p.kw("NOT")
		p.kw("EXISTS")
	}
}

// ident consumes an identifier: a word, `quoted` or "quoted" (ANSI_QUOTES).
func (p *ddlParser) ident() (string, bool) {
	if p.i < len(p.toks) {
		if t := p.toks[p.i]; t.kind == 'w' || t.kind == '`' || t.kind == '"' {
			p.i++
			return t.text, true
		}
	}
	return "", false
}

// name consumes a table name, [db.]table, and returns it as db.table.
func (p *ddlParser) name() (string, bool) {
	a, ok := p.ident()
	if !ok {
		return "", false
	}
	if !p.punct('.') {
		return p.schema + "." + a, true
	}
	b, ok := p.ident()
	return a + "." + b, ok
}

// unread is a table statement whose table names could not be read.
func (p *ddlParser) unread(verb string) ddlStmt {
	d := ddlStmt{Verb: verb, Unread: true}
	for _, t := range p.toks {
		if t.kind == 'w' || t.kind == '`' || t.kind == '"' {
			d.Words = append(d.Words, t.text)
		}
	}
	return d
}

// tables reads one table name, or a comma-separated list.
func (p *ddlParser) tables(verb string, list bool) ddlStmt {
	d := ddlStmt{Verb: verb}
	for {
		n, ok := p.name()
		if !ok {
			return p.unread(verb)
		}
		d.Tables = append(d.Tables, n)
		if !list || !p.punct(',') {
			return d
		}
	}
}

// rename reads "a [WAIT n | NOWAIT] TO b [, c TO d]…", both sides of each.
func (p *ddlParser) rename() ddlStmt {
	d := ddlStmt{Verb: "RENAME"}
	for {
		from, ok := p.name()
		if !ok {
			return p.unread("RENAME")
		}
		if p.kw("WAIT") {
			p.ident()
		}
		p.kw("NOWAIT")
		if !p.kw("TO") {
			return p.unread("RENAME")
		}
		to, ok := p.name()
		if !ok {
			return p.unread("RENAME")
		}
		d.Tables = append(d.Tables, from, to)
		if !p.punct(',') {
			return d
		}
	}
}

// database reads the database a DROP DATABASE names.
func (p *ddlParser) database(verb string) ddlStmt {
	db, ok := p.ident()
	if !ok {
		return p.unread(verb)
	}
	return ddlStmt{Verb: verb, Schema: db}
}

// alter reads ALTER TABLE's table and looks through its clauses for the
// ones that move rows or the table itself: a rename (to or, from another
// table, onto a mapped name), or partitions and tablespaces dropped,
// truncated, exchanged, converted, discarded or imported.
func (p *ddlParser) alter() ddlStmt {
	first, ok := p.name()
	if !ok {
		return p.unread("ALTER")
	}
	d := ddlStmt{Verb: "ALTER", Tables: []string{first}}
	depth := 0
	for p.i < len(p.toks) {
		switch {
		case p.punct('('):
			depth++
		case p.punct(')'):
			depth--
		case depth > 0:
			p.i++
		case p.kw("RENAME"):
			if p.kw("COLUMN", "INDEX", "KEY", "CONSTRAINT") {
				continue
			}
			p.kw("TO", "AS")
			to, ok := p.name()
			if !ok {
				return p.unread("ALTER TABLE … RENAME")
			}
			d.Verb, d.Tables = "ALTER TABLE … RENAME", append(d.Tables, to)
		case p.kw("EXCHANGE"):
			d.Verb = "ALTER TABLE … EXCHANGE PARTITION"
			for p.i < len(p.toks) && !p.kw("TABLE") {
				p.i++
			}
			other, ok := p.name()
			if !ok {
				return p.unread(d.Verb)
			}
			d.Tables = append(d.Tables, other)
		case p.kw("DROP", "TRUNCATE", "DISCARD", "IMPORT", "CONVERT"):
			verb := strings.ToUpper(p.toks[p.i-1].text)
			if p.kw("PARTITION", "TABLESPACE") || verb == "CONVERT" && p.kw("TABLE") {
				d.Verb = "ALTER TABLE … " + verb + " " + strings.ToUpper(p.toks[p.i-1].text)
			}
		default:
			p.i++
		}
	}
	return d
}

// ddlToken is one token of a statement. kind is 'w' for a word; the quote
// character for a quoted identifier or string, whose text is unquoted; the
// byte itself for punctuation.
type ddlToken struct {
	text string
	kind byte
}

// ddlTokens splits a statement into tokens, leaving out comments (/* */,
// "-- " and # to the end of the line) but keeping the text of executable
// comments (/*!50001 … */, /*M!100100 … */), which the server runs.
func ddlTokens(stmt string) []ddlToken {
	var toks []ddlToken
	inExec := false
	for i := 0; i < len(stmt); {
		c, rest := stmt[i], stmt[i:]
		switch {
		case isSpace(c):
			i++
		case strings.HasPrefix(rest, "/*!") || strings.HasPrefix(rest, "/*M!"):
			i += strings.IndexByte(rest, '!') + 1
			for i < len(stmt) && stmt[i] >= '0' && stmt[i] <= '9' {
				i++ // the server version it needs
			}
			inExec = true
		case inExec && strings.HasPrefix(rest, "*/"):
			i += 2
			inExec = false
		case strings.HasPrefix(rest, "/*"):
			if end := strings.Index(rest[2:], "*/"); end >= 0 {
				i += 2 + end + 2
			} else {
				i = len(stmt)
			}
		case c == '#' || strings.HasPrefix(rest, "--") && (len(rest) == 2 || isSpace(rest[2])):
			if end := strings.IndexByte(rest, '\n'); end >= 0 {
				i += end + 1
			} else {
				i = len(stmt)
			}
		case c == '`' || c == '"' || c == '\'':
			var b strings.Builder
			j := i + 1
			for ; j < len(stmt); j++ {
				if stmt[j] == c {
					if j+1 < len(stmt) && stmt[j+1] == c {
						b.WriteByte(c) // a doubled quote
						j++
						continue
					}
					break
				}
				if stmt[j] == '\\' && c != '`' && j+1 < len(stmt) {
					j++
				}
				b.WriteByte(stmt[j])
			}
			toks = append(toks, ddlToken{b.String(), c})
			i = j + 1
		case isWordByte(c):
			j := i
			for j < len(stmt) && isWordByte(stmt[j]) {
				j++
			}
			toks = append(toks, ddlToken{stmt[i:j], 'w'})
			i = j
		default:
			toks = append(toks, ddlToken{string(c), c})
			i++
		}
	}
	return toks
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// isWordByte: unquoted identifiers and keywords are letters, digits, _, $
// and any character beyond ASCII.
func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$' || c >= 0x80
}

// mapped returns the mapping of a source table named db.table, or nil.
// Names are compared without case as well: with lower_case_table_names
// the server takes T for t, and a false stop is better than a missed one.
func (p *Pipeline) mapped(table string) *TableMap {
	if m := p.maps[table]; m != nil {
		return m
	}
	for _, m := range p.order {
		if strings.EqualFold(m.SourceName(), table) {
			return m
		}
	}
	return nil
}

// schemaChange decides whether a DDL can be absorbed: statements that name
// no mapped table, and ALTERs after which every copied column still
// exists with the same type (a new column, an index), go on; anything
// else that names a mapped table (on either side of a rename, anywhere in
// a multi-table DROP), drops its database, or names it in a table
// statement banyan cannot read, stops the stream.
func (p *Pipeline) schemaChange(ctx context.Context, d *DDL) error {
	st := parseDDL(d.Schema, d.Statement)
	stop := func(table, why string) error {
		return &SchemaError{Table: table, Statement: d.Statement, At: d.End, Why: why}
	}
	for _, m := range p.order {
		switch {
		case st.Unread && slices.ContainsFunc(st.Words, func(w string) bool { return strings.EqualFold(w, m.SourceTable) }):
			return stop(m.SourceName(), fmt.Sprintf("banyan cannot read which tables this %s statement changes, and it names the mapped table %s", st.Verb, m.SourceTable))
		case st.Schema != "" && strings.EqualFold(st.Schema, m.SourceSchema):
			return stop(m.SourceName(), fmt.Sprintf("%s of the mapped table's database", st.Verb))
		}
	}
	for _, table := range st.Tables {
		m := p.mapped(table)
		if m == nil {
			continue
		}
		if st.Verb != "ALTER" {
			return stop(m.SourceName(), fmt.Sprintf("%s on a mapped table", st.Verb))
		}
		if err := p.columnsKept(ctx, m, stop); err != nil {
			return err
		}
		p.log.Info("cdc: schema change absorbed (mapped columns unchanged)", "table", m.SourceName(), "statement", d.Statement)
	}
	return nil
}

// columnsKept checks that every copied column of m still exists on the
// source with the same type.
func (p *Pipeline) columnsKept(ctx context.Context, m *TableMap, stop func(table, why string) error) error {
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
			return stop(m.SourceName(), fmt.Sprintf("mapped column %s no longer exists", c.Source))
		case t != c.DataType:
			return stop(m.SourceName(), fmt.Sprintf("mapped column %s changed type from %s to %s", c.Source, c.DataType, t))
		}
	}
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
		keyCols := make([]string, len(m.PK))
		for j, k := range m.PK {
			keyCols[j] = m.Cols[k].Target
		}
		if ok, err := p.target.KeyEnforced(ctx, m.TargetSchema, m.TargetTable, keyCols); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("target %s has no PRIMARY or UNIQUE key on (%s) with NOT NULL columns, the key mapped from %s: without one every update would add a row; add the key to the target table", m.TargetName(), strings.Join(keyCols, ", "), m.SourceName())
		}
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
