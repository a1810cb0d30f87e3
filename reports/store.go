// Package reports stores compared pairs (diff outcomes) in an embedded
// SQLite file, redacted before anything is written, keeps per-route
// aggregates and a few full examples per differing field, and renders them
// as text, JSON or HTML reports and as the admin dashboard.
package reports

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/banyanhq/banyan/diff"
	_ "modernc.org/sqlite" // pure-Go SQLite driver, registered as "sqlite"
)

// Defaults for Options fields left zero.
const (
	DefaultMaxAge      = 7 * 24 * time.Hour
	DefaultMaxOutcomes = 1_000_000
	DefaultExamples    = 5
	DefaultQueue       = 10_000
)

const (
	batchMax      = 500                    // outcomes per transaction
	flushEvery    = 100 * time.Millisecond // a partial batch waits at most this long
	pruneEvery    = time.Minute            // age retention runs this often
	pruneChunk    = 10_000                 // count retention deletes at most this many per batch
	writeTimeout  = 30 * time.Second
	nanosPerMin   = int64(time.Minute)
	latencyLegacy = 0
	latencyNew    = 1
)

// ErrClosed is returned by Flush after Close.
var ErrClosed = errors.New("reports store closed")

// ErrNoStore is returned by Open in read-only mode when the file does not
// exist or is not a banyan report store.
var ErrNoStore = errors.New("no report store")

// Options configure a Store. Zero fields take the defaults.
type Options struct {
	// Redact lists JSON paths masked in bodies and difference values
	// ("$..card_number", "$..email", "$.customer.phone"). Card numbers
	// and e-mail addresses are masked everywhere regardless.
	Redact []string
	// MaxAge drops outcomes and examples older than this (default 7 days).
	MaxAge time.Duration
	// MaxOutcomes keeps at most this many outcomes, dropping the oldest
	// (default 1,000,000).
	MaxOutcomes int
	// Examples is how many full examples are kept per route, field path
	// pattern and kind of difference (default 5).
	Examples int
	// Queue is how many outcomes Record buffers for the writer (default
	// 10,000); when it is full, Record drops and counts.
	Queue int
	// ReadOnly opens an existing store for reports only (the report
	// command beside a running server): no writer, no retention, and
	// Record always drops.
	ReadOnly bool
}

func (o *Options) defaults() {
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.MaxOutcomes <= 0 {
		o.MaxOutcomes = DefaultMaxOutcomes
	}
	if o.Examples <= 0 {
		o.Examples = DefaultExamples
	}
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
}

// Store records diff outcomes and answers reports. Record, Flush, Report,
// Examples and the Dashboard handler are safe for concurrent use. One
// process writes a store at a time; others may open it ReadOnly.
type Store struct {
	db   *sql.DB
	path string
	opts Options
	red  *Redactor
	now  func() time.Time

	mu     sync.RWMutex // guards closed against Record's send
	closed bool
	queue  chan entry
	stop   chan struct{}
	exited chan struct{}

	dropped atomic.Int64
	failed  atomic.Int64

	// Owned by the writer goroutine.
	count    int64          // outcomes in the table
	examples map[string]int // examples kept per exampleKey (route, field pattern, kind)
	writeErr error          // first write error since the last Flush
}

// entry is an outcome for the writer, or (flush != nil) a request to
// write everything queued before it and report the result.
type entry struct {
	o     *diff.Outcome
	flush chan error
	prune bool // with flush: also run age retention now
}

const schema = `
CREATE TABLE IF NOT EXISTS outcomes (
	id            INTEGER PRIMARY KEY,
	at            INTEGER NOT NULL, -- unix nanoseconds
	route         TEXT NOT NULL,
	method        TEXT NOT NULL,
	pattern       TEXT NOT NULL,    -- the route's path pattern
	url           TEXT NOT NULL,
	legacy_status INTEGER NOT NULL,
	new_status    INTEGER NOT NULL,
	legacy_us     INTEGER,          -- NULL when that side gave no answer
	new_us        INTEGER,
	verdict       TEXT NOT NULL,
	fields        TEXT NOT NULL,    -- distinct field path patterns, JSON
	differences   TEXT NOT NULL     -- JSON, redacted
);
CREATE INDEX IF NOT EXISTS outcomes_at ON outcomes(at);
CREATE TABLE IF NOT EXISTS route_minutes (
	route      TEXT NOT NULL,
	minute     INTEGER NOT NULL,
	compared   INTEGER NOT NULL,
	matched    INTEGER NOT NULL,
	diffs      INTEGER NOT NULL,
	noise_only INTEGER NOT NULL,
	errors     INTEGER NOT NULL,
	PRIMARY KEY (route, minute)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS field_minutes (
	route  TEXT NOT NULL,
	minute INTEGER NOT NULL,
	field  TEXT NOT NULL,
	kind   TEXT NOT NULL,
	noise  INTEGER NOT NULL,
	count  INTEGER NOT NULL,
	PRIMARY KEY (route, minute, field, kind, noise)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latency_minutes (
	route  TEXT NOT NULL,
	minute INTEGER NOT NULL,
	side   INTEGER NOT NULL, -- 0 legacy, 1 new
	bin    INTEGER NOT NULL, -- microseconds, 3 significant digits
	count  INTEGER NOT NULL,
	PRIMARY KEY (route, minute, side, bin)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS examples (
	id      INTEGER PRIMARY KEY,
	at      INTEGER NOT NULL,
	route   TEXT NOT NULL,
	url     TEXT NOT NULL,
	outcome TEXT NOT NULL -- Example, JSON, redacted
);
CREATE INDEX IF NOT EXISTS examples_at ON examples(at);
CREATE TABLE IF NOT EXISTS example_fields (
	route      TEXT NOT NULL,
	field      TEXT NOT NULL,
	example_id INTEGER NOT NULL,
	kind       TEXT NOT NULL,
	difference TEXT NOT NULL, -- the first difference at this pattern, JSON
	PRIMARY KEY (route, field, example_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS example_fields_example ON example_fields(example_id);
`

// Open opens (creating if needed) the store at path and starts its
// writer. Close it to flush and stop the writer.
func Open(path string, o Options) (*Store, error) {
	return open(path, o, time.Now)
}

// open is Open with a clock, for tests.
func open(path string, o Options, now func() time.Time) (*Store, error) {
	o.defaults()
	red, err := NewRedactor(o.Redact)
	if err != nil {
		return nil, fmt.Errorf("open reports %s: %w", path, err)
	}
	if o.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("%w at %s: %w", ErrNoStore, path, err)
		}
	} else if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("open reports %s: %w", path, err)
		}
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	if o.ReadOnly {
		dsn += "&_pragma=query_only(1)"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open reports %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	s := &Store{
		db:       db,
		path:     path,
		opts:     o,
		red:      red,
		now:      now,
		queue:    make(chan entry, o.Queue),
		stop:     make(chan struct{}),
		exited:   make(chan struct{}),
		examples: map[string]int{},
	}
	if o.ReadOnly {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type='table' AND name='route_minutes'`).Scan(&n); err != nil || n == 0 {
			db.Close()
			if err == nil {
				err = errors.New("it holds no banyan reports")
			}
			return nil, fmt.Errorf("%w at %s: %w", ErrNoStore, path, err)
		}
		s.closed = true
		close(s.exited)
		return s, nil
	}
	if err := s.init(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open reports %s: %w", path, err)
	}
	go s.run()
	return s, nil
}

func (s *Store) init() error {
	if _, err := s.db.Exec(schema); err != nil {
		return err
	}
	if err := s.db.QueryRow(`SELECT count(*) FROM outcomes`).Scan(&s.count); err != nil {
		return err
	}
	if err := s.pruneAge(context.Background()); err != nil {
		return err
	}
	return s.loadExampleCounts(context.Background())
}

func (s *Store) loadExampleCounts(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `SELECT route, field, kind, count(*) FROM example_fields GROUP BY route, field, kind`)
	if err != nil {
		return err
	}
	defer rows.Close()
	counts := map[string]int{}
	for rows.Next() {
		var route, field, kind string
		var n int
		if err := rows.Scan(&route, &field, &kind, &n); err != nil {
			return err
		}
		counts[exampleKey(route, field, diff.Kind(kind))] = n
	}
	if err := rows.Err(); err != nil {
		return err
	}
	s.examples = counts
	return nil
}

// Redactor returns the redactor the store applies, for callers that log
// what they compare.
func (s *Store) Redactor() *Redactor { return s.red }

// Record redacts o and queues it for the background writer. It never
// blocks on I/O: when the queue is full (or the store is closed) it drops
// o, counts it in Dropped and returns false. Safe for concurrent use.
func (s *Store) Record(o diff.Outcome) bool {
	if len(s.queue) == cap(s.queue) {
		s.dropped.Add(1)
		return false
	}
	if o.Time.IsZero() {
		o.Time = s.now()
	}
	r := s.red.Outcome(o)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		s.dropped.Add(1)
		return false
	}
	select {
	case s.queue <- entry{o: &r}:
		return true
	default:
		s.dropped.Add(1)
		return false
	}
}

// Dropped is how many outcomes Record refused because the queue was full
// or the store closed.
func (s *Store) Dropped() int64 { return s.dropped.Load() }

// Failed is how many recorded outcomes were lost because writing them to
// the file failed (the error is returned by the next Flush or Close).
func (s *Store) Failed() int64 { return s.failed.Load() }

// Flush waits until every outcome recorded before the call is written, and
// returns the first write error since the previous Flush.
func (s *Store) Flush(ctx context.Context) error {
	return s.flush(ctx, false)
}

// flush is Flush, optionally running age retention in the writer too.
func (s *Store) flush(ctx context.Context, prune bool) error {
	done := make(chan error, 1)
	select {
	case s.queue <- entry{flush: done, prune: prune}:
	case <-s.exited:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-s.exited:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close writes what is queued, stops the writer and closes the file. When
// ctx ends first, Close returns its error and the writer finishes (and
// closes the file) on its own.
func (s *Store) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		if s.opts.ReadOnly {
			return s.db.Close()
		}
		<-s.exited
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	select {
	case <-s.exited:
	case <-ctx.Done():
		return fmt.Errorf("close reports %s: %w", s.path, ctx.Err())
	}
	err := s.writeErr
	s.writeErr = nil
	return err
}

// run is the writer: it batches queued outcomes into one transaction per
// batchMax outcomes or flushEvery, and runs age retention every
// pruneEvery. It owns the database connection until it exits.
func (s *Store) run() {
	defer close(s.exited)
	defer s.db.Close()
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	prune := time.NewTicker(pruneEvery)
	defer prune.Stop()
	var batch []*diff.Outcome
	write := func() {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		defer cancel()
		if err := s.write(ctx, batch); err != nil {
			s.failed.Add(int64(len(batch)))
			if s.writeErr == nil {
				s.writeErr = err
			}
		}
		batch = batch[:0]
	}
	handle := func(e entry) {
		if e.flush != nil {
			write()
			if e.prune {
				ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
				if err := s.pruneAge(ctx); err != nil && s.writeErr == nil {
					s.writeErr = err
				}
				cancel()
			}
			e.flush <- s.writeErr
			s.writeErr = nil
			return
		}
		batch = append(batch, e.o)
		if len(batch) >= batchMax {
			write()
		}
	}
	for {
		select {
		case e := <-s.queue:
			handle(e)
		case <-tick.C:
			write()
		case <-prune.C:
			write()
			ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
			if err := s.pruneAge(ctx); err != nil && s.writeErr == nil {
				s.writeErr = err
			}
			cancel()
		case <-s.stop:
			for {
				select {
				case e := <-s.queue:
					handle(e)
				default:
					write()
					return
				}
			}
		}
	}
}

// fieldRef is one distinct (pattern, kind, noise) of an outcome.
type fieldRef struct {
	Path  string    `json:"p"`
	Kind  diff.Kind `json:"k"`
	Noise bool      `json:"n,omitempty"`
}

// aggRow is what an outcome contributes to the aggregates.
type aggRow struct {
	at       int64
	route    string
	verdict  diff.Verdict
	legacyUS sql.NullInt64
	newUS    sql.NullInt64
	fields   []fieldRef
}

// write inserts a batch, updates the aggregates and examples, and applies
// count retention, all in one transaction.
func (s *Store) write(ctx context.Context, batch []*diff.Outcome) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("write reports: %w", err)
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO outcomes(at, route, method, pattern, url, legacy_status, new_status, legacy_us, new_us, verdict, fields, differences)
		VALUES(?,?,?,?,?,?,?,?,?,?,?,?)`)
	if err != nil {
		return fmt.Errorf("write reports: %w", err)
	}
	defer ins.Close()
	d := newDeltas()
	examples := map[string]int{}
	for _, o := range batch {
		row := toAggRow(o)
		fields, _ := json.Marshal(row.fields)
		diffs, _ := json.Marshal(o.Differences)
		if diffs == nil || string(diffs) == "null" {
			diffs = []byte("[]")
		}
		if _, err := ins.ExecContext(ctx, row.at, o.Route, o.Method, o.Path, o.URL, o.Legacy.Status, o.New.Status,
			row.legacyUS, row.newUS, string(row.verdict), string(fields), string(diffs)); err != nil {
			return fmt.Errorf("write reports: %w", err)
		}
		d.add(row, 1)
		if err := s.keepExample(ctx, tx, o, examples); err != nil {
			return fmt.Errorf("write reports examples: %w", err)
		}
	}
	count := s.count + int64(len(batch))
	if over := count - int64(s.opts.MaxOutcomes); over > 0 {
		n, err := s.pruneOldest(ctx, tx, min(over, pruneChunk), d)
		if err != nil {
			return fmt.Errorf("write reports retention: %w", err)
		}
		count -= n
	}
	if err := d.apply(ctx, tx); err != nil {
		return fmt.Errorf("write reports aggregates: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("write reports: %w", err)
	}
	s.count = count
	for k, n := range examples {
		s.examples[k] += n
	}
	return nil
}

func toAggRow(o *diff.Outcome) aggRow {
	row := aggRow{at: o.Time.UnixNano(), route: o.Route, verdict: verdictOf(o)}
	// A side that gave no answer has no latency worth a percentile.
	if o.Legacy.Err == "" {
		row.legacyUS = sql.NullInt64{Int64: o.Legacy.Latency.Microseconds(), Valid: true}
	}
	if o.New.Err == "" {
		row.newUS = sql.NullInt64{Int64: o.New.Latency.Microseconds(), Valid: true}
	}
	seen := map[fieldRef]bool{}
	for _, d := range o.Differences {
		f := fieldRef{Path: diff.Pattern(d.Path), Kind: d.Kind, Noise: d.Noise}
		if !seen[f] {
			seen[f] = true
			row.fields = append(row.fields, f)
		}
	}
	return row
}

// verdictOf trusts the outcome's verdict and derives one when it is empty
// or unknown.
func verdictOf(o *diff.Outcome) diff.Verdict {
	switch o.Verdict {
	case diff.Match, diff.Diff, diff.NoiseOnly, diff.Error:
		return o.Verdict
	}
	if o.Legacy.Err != "" || o.New.Err != "" {
		return diff.Error
	}
	v := diff.Match
	for _, d := range o.Differences {
		if !d.Noise {
			return diff.Diff
		}
		v = diff.NoiseOnly
	}
	return v
}

// exampleKey is what Options.Examples counts examples by: a route's field
// pattern and the kind of its difference, so that a field that first
// differed in one way (null vs a number) still gets examples of another
// (two numbers) that the report shows for it.
func exampleKey(route, field string, kind diff.Kind) string {
	return route + "\x00" + field + "\x00" + string(kind)
}

// keepExample stores o as an example for each of its field patterns, by
// the first of its differences there whose kind has fewer than
// Options.Examples examples at that pattern.
func (s *Store) keepExample(ctx context.Context, tx *sql.Tx, o *diff.Outcome, pending map[string]int) error {
	if len(o.Differences) == 0 {
		return nil
	}
	type want struct {
		field string
		d     diff.Difference
	}
	var wants []want
	seen := map[string]bool{}
	for _, d := range o.Differences {
		f := diff.Pattern(d.Path)
		k := exampleKey(o.Route, f, d.Kind)
		if seen[f] || s.examples[k]+pending[k] >= s.opts.Examples {
			continue
		}
		seen[f] = true
		wants = append(wants, want{f, d})
	}
	if len(wants) == 0 {
		return nil
	}
	ex, _ := json.Marshal(exampleOf(o))
	res, err := tx.ExecContext(ctx, `INSERT INTO examples(at, route, url, outcome) VALUES(?,?,?,?)`, o.Time.UnixNano(), o.Route, o.URL, string(ex))
	if err != nil {
		return err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return err
	}
	for _, w := range wants {
		dj, _ := json.Marshal(w.d)
		if _, err := tx.ExecContext(ctx, `INSERT INTO example_fields(route, field, example_id, kind, difference) VALUES(?,?,?,?,?)`,
			o.Route, w.field, id, string(w.d.Kind), string(dj)); err != nil {
			return err
		}
		pending[exampleKey(o.Route, w.field, w.d.Kind)]++
	}
	return nil
}

// pruneOldest deletes the n oldest outcomes, taking them out of the
// aggregates in d.
func (s *Store) pruneOldest(ctx context.Context, tx *sql.Tx, n int64, d *deltas) (int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, at, route, verdict, legacy_us, new_us, fields FROM outcomes ORDER BY id LIMIT ?`, n)
	if err != nil {
		return 0, err
	}
	var last, deleted int64
	for rows.Next() {
		var row aggRow
		var verdict, fields string
		if err := rows.Scan(&last, &row.at, &row.route, &verdict, &row.legacyUS, &row.newUS, &fields); err != nil {
			rows.Close()
			return 0, err
		}
		row.verdict = diff.Verdict(verdict)
		if err := json.Unmarshal([]byte(fields), &row.fields); err != nil {
			rows.Close()
			return 0, err
		}
		d.add(row, -1)
		deleted++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if deleted == 0 {
		return 0, nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM outcomes WHERE id <= ?`, last); err != nil {
		return 0, err
	}
	return deleted, nil
}

// pruneAge drops outcomes, aggregates and examples older than MaxAge.
// Outcomes and aggregates go by whole minutes, so both always agree.
func (s *Store) pruneAge(ctx context.Context) error {
	cutoff := s.now().Add(-s.opts.MaxAge).UnixNano()
	minute := floorDiv(cutoff, nanosPerMin)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("reports retention: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM outcomes WHERE at < ?`, minute*nanosPerMin)
	if err != nil {
		return fmt.Errorf("reports retention: %w", err)
	}
	n, _ := res.RowsAffected()
	for _, q := range []string{
		`DELETE FROM route_minutes WHERE minute < ?`,
		`DELETE FROM field_minutes WHERE minute < ?`,
		`DELETE FROM latency_minutes WHERE minute < ?`,
	} {
		if _, err := tx.ExecContext(ctx, q, minute); err != nil {
			return fmt.Errorf("reports retention: %w", err)
		}
	}
	res, err = tx.ExecContext(ctx, `DELETE FROM example_fields WHERE example_id IN (SELECT id FROM examples WHERE at < ?)`, cutoff)
	if err != nil {
		return fmt.Errorf("reports retention: %w", err)
	}
	exDeleted, _ := res.RowsAffected()
	if _, err := tx.ExecContext(ctx, `DELETE FROM examples WHERE at < ?`, cutoff); err != nil {
		return fmt.Errorf("reports retention: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("reports retention: %w", err)
	}
	s.count -= n
	if exDeleted > 0 {
		return s.loadExampleCounts(ctx)
	}
	return nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// latencyBin rounds a latency in microseconds down to 3 significant
// digits: percentiles are exact for round values and within 1 % otherwise.
func latencyBin(us int64) int64 {
	if us < 1000 {
		return max(us, 0)
	}
	p := int64(1)
	for us/p >= 1000 {
		p *= 10
	}
	return us / p * p
}

type minuteKey struct {
	route  string
	minute int64
}

type routeCounts struct {
	compared, matched, diffs, noiseOnly, errors int64
}

type fieldKey struct {
	minuteKey
	fieldRef
}

type latencyKey struct {
	minuteKey
	side int
	bin  int64
}

// deltas are aggregate changes accumulated over a transaction.
type deltas struct {
	routes  map[minuteKey]*routeCounts
	fields  map[fieldKey]int64
	latency map[latencyKey]int64
}

func newDeltas() *deltas {
	return &deltas{routes: map[minuteKey]*routeCounts{}, fields: map[fieldKey]int64{}, latency: map[latencyKey]int64{}}
}

func (d *deltas) add(r aggRow, sign int64) {
	mk := minuteKey{r.route, floorDiv(r.at, nanosPerMin)}
	c := d.routes[mk]
	if c == nil {
		c = &routeCounts{}
		d.routes[mk] = c
	}
	c.compared += sign
	switch r.verdict {
	case diff.Match:
		c.matched += sign
	case diff.Diff:
		c.diffs += sign
	case diff.NoiseOnly:
		c.noiseOnly += sign
	case diff.Error:
		c.errors += sign
	}
	for _, f := range r.fields {
		d.fields[fieldKey{mk, f}] += sign
	}
	if r.legacyUS.Valid {
		d.latency[latencyKey{mk, latencyLegacy, latencyBin(r.legacyUS.Int64)}] += sign
	}
	if r.newUS.Valid {
		d.latency[latencyKey{mk, latencyNew, latencyBin(r.newUS.Int64)}] += sign
	}
}

func (d *deltas) apply(ctx context.Context, tx *sql.Tx) error {
	shrank := false
	routes, err := tx.PrepareContext(ctx, `INSERT INTO route_minutes(route, minute, compared, matched, diffs, noise_only, errors) VALUES(?,?,?,?,?,?,?)
		ON CONFLICT(route, minute) DO UPDATE SET compared=compared+excluded.compared, matched=matched+excluded.matched,
		diffs=diffs+excluded.diffs, noise_only=noise_only+excluded.noise_only, errors=errors+excluded.errors`)
	if err != nil {
		return err
	}
	defer routes.Close()
	fields, err := tx.PrepareContext(ctx, `INSERT INTO field_minutes(route, minute, field, kind, noise, count) VALUES(?,?,?,?,?,?)
		ON CONFLICT(route, minute, field, kind, noise) DO UPDATE SET count=count+excluded.count`)
	if err != nil {
		return err
	}
	defer fields.Close()
	latency, err := tx.PrepareContext(ctx, `INSERT INTO latency_minutes(route, minute, side, bin, count) VALUES(?,?,?,?,?)
		ON CONFLICT(route, minute, side, bin) DO UPDATE SET count=count+excluded.count`)
	if err != nil {
		return err
	}
	defer latency.Close()
	for k, c := range d.routes {
		if c.compared < 0 {
			shrank = true
		}
		if _, err := routes.ExecContext(ctx, k.route, k.minute, c.compared, c.matched, c.diffs, c.noiseOnly, c.errors); err != nil {
			return err
		}
	}
	for k, n := range d.fields {
		if n == 0 {
			continue
		}
		if _, err := fields.ExecContext(ctx, k.route, k.minute, k.Path, string(k.Kind), k.Noise, n); err != nil {
			return err
		}
	}
	for k, n := range d.latency {
		if n == 0 {
			continue
		}
		if _, err := latency.ExecContext(ctx, k.route, k.minute, k.side, k.bin, n); err != nil {
			return err
		}
	}
	if !shrank {
		return nil
	}
	for _, q := range []string{
		`DELETE FROM route_minutes WHERE compared <= 0`,
		`DELETE FROM field_minutes WHERE count <= 0`,
		`DELETE FROM latency_minutes WHERE count <= 0`,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}
