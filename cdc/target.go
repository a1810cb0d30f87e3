package cdc

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	driver "github.com/go-sql-driver/mysql"
)

// Checkpoint is the pipeline's progress as stored in the target, in the
// same transaction as the rows it covers.
type Checkpoint struct {
	Pipeline string
	// Phase is "copy" until the initial copy is done, then "stream".
	Phase string
	// Start is the source position read before the copy began; streaming
	// starts there, so changes made during the copy are replayed.
	Start Position
	// Applied is the position after the last source transaction applied.
	Applied Position
	// CopyEnd is the source position read when the copy had read its last
	// row (zero before). Until Applied reaches it, the stream replays
	// onto rows the copy may have written in a later state (settle.go).
	CopyEnd Position
	// SourceTS is the commit time (unix seconds) of that transaction.
	SourceTS int64
	// appliedText is Applied as the target held it when read: Apply moves
	// the checkpoint only from there (a format of its own, written by
	// hand, still matches).
	appliedText string
	UpdatedAt   time.Time
}

// Phases.
const (
	PhaseCopy   = "copy"
	PhaseStream = "stream"
)

// TableProgress is one table's initial copy progress.
type TableProgress struct {
	Table  string `json:"table"`
	LastPK []any  `json:"last_pk"` // nil before the first chunk
	Rows   int64  `json:"rows"`
	Done   bool   `json:"done"`
}

const targetSchema = `
CREATE TABLE IF NOT EXISTS banyan_cdc_checkpoint (
	pipeline    VARCHAR(64) NOT NULL PRIMARY KEY,
	phase       VARCHAR(16) NOT NULL,
	start_pos   TEXT NOT NULL,
	applied_pos TEXT NOT NULL,
	copy_end    TEXT NULL,
	source_ts   BIGINT NOT NULL DEFAULT 0,
	updated_at  DATETIME(6) NOT NULL
) ENGINE=InnoDB;
CREATE TABLE IF NOT EXISTS banyan_cdc_copy (
	pipeline     VARCHAR(64) NOT NULL,
	source_table VARCHAR(200) NOT NULL,
	last_pk      TEXT NULL,
	rows_copied  BIGINT NOT NULL DEFAULT 0,
	done         TINYINT NOT NULL DEFAULT 0,
	PRIMARY KEY (pipeline, source_table)
) ENGINE=InnoDB;
CREATE TABLE IF NOT EXISTS banyan_cdc_mapping (
	pipeline     VARCHAR(64) NOT NULL,
	source_table VARCHAR(200) NOT NULL,
	columns      TEXT NOT NULL,
	PRIMARY KEY (pipeline, source_table)
) ENGINE=InnoDB;
CREATE TABLE IF NOT EXISTS banyan_cdc_prune (
	pipeline     VARCHAR(64) NOT NULL,
	source_table VARCHAR(200) NOT NULL,
	last_key     TEXT NULL,
	rows_checked BIGINT NOT NULL DEFAULT 0,
	rows_deleted BIGINT NOT NULL DEFAULT 0,
	done         TINYINT NOT NULL DEFAULT 0,
	PRIMARY KEY (pipeline, source_table)
) ENGINE=InnoDB;
CREATE TABLE IF NOT EXISTS banyan_cdc_stats (
	pipeline     VARCHAR(64) NOT NULL,
	target_table VARCHAR(200) NOT NULL,
	op           VARCHAR(8) NOT NULL,
	row_count    BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (pipeline, target_table, op)
) ENGINE=InnoDB`

// Target is the new database: it applies batches of changes and keeps the
// checkpoint beside them.
type Target struct {
	DB       *sql.DB
	Pipeline string
}

// Init creates banyan's bookkeeping tables when missing, and adds the
// columns later versions need to a checkpoint table made by an earlier one.
func (t *Target) Init(ctx context.Context) error {
	for _, stmt := range strings.Split(targetSchema, ";") {
		if _, err := t.DB.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create checkpoint tables in target: %w", err)
		}
	}
	var n int
	if err := t.DB.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'banyan_cdc_checkpoint' AND COLUMN_NAME = 'copy_end'`).Scan(&n); err != nil {
		return fmt.Errorf("read checkpoint table columns in target: %w", err)
	}
	if n == 0 {
		if _, err := t.DB.ExecContext(ctx, `ALTER TABLE banyan_cdc_checkpoint ADD COLUMN copy_end TEXT NULL AFTER applied_pos`); err != nil {
			return fmt.Errorf("add copy_end to the checkpoint table in target: %w", err)
		}
	}
	return nil
}

// Checkpoint reads the stored checkpoint; ok is false when there is none.
func (t *Target) Checkpoint(ctx context.Context) (Checkpoint, bool, error) {
	var cp Checkpoint
	var start, applied, updated string
	var copyEnd sql.NullString
	read := func(copyEndCol string) error {
		return t.DB.QueryRowContext(ctx, `SELECT phase, start_pos, applied_pos, `+copyEndCol+`, source_ts, updated_at FROM banyan_cdc_checkpoint WHERE pipeline = ?`, t.Pipeline).
			Scan(&cp.Phase, &start, &applied, &copyEnd, &cp.SourceTS, &updated)
	}
	err := read("copy_end")
	if serverError(err, 1054) {
		// A checkpoint table made by an earlier banyan, which Init has not
		// brought up to date yet: `cdc status` after an upgrade, before
		// the next run.
		err = read("NULL")
	}
	if errors.Is(err, sql.ErrNoRows) {
		return Checkpoint{}, false, nil
	}
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("read checkpoint: %w", err)
	}
	cp.Pipeline, cp.appliedText = t.Pipeline, applied
	cp.UpdatedAt, _ = time.Parse("2006-01-02 15:04:05.999999", updated)
	if err := errors.Join(json.Unmarshal([]byte(start), &cp.Start), json.Unmarshal([]byte(applied), &cp.Applied)); err != nil {
		return Checkpoint{}, false, fmt.Errorf("read checkpoint: %w", err)
	}
	if copyEnd.Valid {
		if err := json.Unmarshal([]byte(copyEnd.String), &cp.CopyEnd); err != nil {
			return Checkpoint{}, false, fmt.Errorf("read checkpoint: %w", err)
		}
	}
	return cp, true, nil
}

// execer is a *sql.Tx or *sql.DB.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (t *Target) saveCheckpoint(ctx context.Context, x execer, cp Checkpoint) error {
	_, err := x.ExecContext(ctx, `INSERT INTO banyan_cdc_checkpoint (pipeline, phase, start_pos, applied_pos, copy_end, source_ts, updated_at) VALUES (?,?,?,?,?,?,?)
		ON DUPLICATE KEY UPDATE phase=VALUES(phase), start_pos=VALUES(start_pos), applied_pos=VALUES(applied_pos), copy_end=VALUES(copy_end), source_ts=VALUES(source_ts), updated_at=VALUES(updated_at)`,
		append([]any{t.Pipeline}, checkpointValues(cp)...)...)
	if err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return nil
}

// moveCheckpoint saves cp as saveCheckpoint does, but only over the
// checkpoint whose applied_pos is the text from (a batch's start);
// errStreamMoved when the stored one is another.
func (t *Target) moveCheckpoint(ctx context.Context, x execer, from string, cp Checkpoint) error {
	res, err := x.ExecContext(ctx, `UPDATE banyan_cdc_checkpoint SET phase=?, start_pos=?, applied_pos=?, copy_end=?, source_ts=?, updated_at=?
		WHERE pipeline = ? AND applied_pos = ?`,
		append(checkpointValues(cp), t.Pipeline, from)...)
	if err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	// updated_at changes, so a row matched is a row changed.
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return errStreamMoved
	}
	return nil
}

// checkpointValues are cp's columns after pipeline, in the table's order.
func checkpointValues(cp Checkpoint) []any {
	var copyEnd any
	if !cp.CopyEnd.IsZero() {
		copyEnd = positionText(cp.CopyEnd)
	}
	return []any{cp.Phase, positionText(cp.Start), positionText(cp.Applied), copyEnd, cp.SourceTS, time.Now().UTC()}
}

// positionText is p as the checkpoint table stores it.
func positionText(p Position) string {
	b, _ := json.Marshal(p)
	return string(b)
}

// errStreamMoved is Apply finding the stored checkpoint moved on since its
// batch was read after it: another run's commit landed in between (a run
// killed just after it sent a batch's commit). The stream gives the batch
// up and resumes from the checkpoint that landed; applied anyway, the
// batch would fire the target's triggers a second time.
var errStreamMoved = errors.New("the stream's checkpoint moved on: another run's commit landed; resuming from it")

// Reset forgets copy progress and starts a new copy from start. Each
// table of prune (source names; a resnapshot's tables) gets a delete pass
// before its copy, which removes the target rows the source no longer
// has; the pass is recorded here, in the same transaction, so a copy
// resumed after a crash still runs it.
func (t *Target) Reset(ctx context.Context, start Position, prune []string) error {
	tx, err := t.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM banyan_cdc_copy WHERE pipeline = ?`, t.Pipeline); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM banyan_cdc_prune WHERE pipeline = ?`, t.Pipeline); err != nil {
		return err
	}
	for _, table := range prune {
		if err := savePrune(ctx, tx, t.Pipeline, PruneProgress{Table: table}); err != nil {
			return err
		}
	}
	// The source time of start is now, as near as banyan can tell: until
	// the stream applies a transaction, the lag counts from here (it
	// showed 0 for the whole copy).
	if err := t.saveCheckpoint(ctx, tx, Checkpoint{Phase: PhaseCopy, Start: start, Applied: start, SourceTS: time.Now().Unix()}); err != nil {
		return err
	}
	return tx.Commit()
}

// Progress reads a table's copy progress.
func (t *Target) Progress(ctx context.Context, table string) (TableProgress, error) {
	p := TableProgress{Table: table}
	var last sql.NullString
	err := t.DB.QueryRowContext(ctx, `SELECT last_pk, rows_copied, done FROM banyan_cdc_copy WHERE pipeline = ? AND source_table = ?`, t.Pipeline, table).
		Scan(&last, &p.Rows, &p.Done)
	if errors.Is(err, sql.ErrNoRows) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("read copy progress of %s: %w", table, err)
	}
	if p.LastPK, err = loadKey(last); err != nil {
		return p, fmt.Errorf("read copy progress of %s: %w", table, err)
	}
	return p, nil
}

// storedKey is a key as a progress table keeps it: its KeyToJSON form as
// JSON text, or NULL for none.
func storedKey(key []any) any {
	if key == nil {
		return nil
	}
	b, _ := json.Marshal(KeyToJSON(key))
	return string(b)
}

// loadKey reads back what storedKey wrote (nil for NULL).
func loadKey(s sql.NullString) ([]any, error) {
	if !s.Valid {
		return nil, nil
	}
	var key []any
	dec := json.NewDecoder(strings.NewReader(s.String))
	dec.UseNumber()
	if err := dec.Decode(&key); err != nil {
		return nil, err
	}
	return KeyFromJSON(key)
}

// errCopyMoved is CopyChunk finding the table's saved progress moved on
// since the chunk was read: another run's commit landed in between.
var errCopyMoved = errors.New("the copy's saved progress moved on: another run's commit landed")

// CopyChunk upserts one chunk of copied rows and records the progress in
// the same transaction. shared, when set, settles collisions on the unique
// keys it returns (settle.go).
//
// It writes with the target's foreign key checks off, on a connection of
// its own: the tables are copied one after another, each chunk at its own
// moment, so a row may reference one its table's copy passed before the
// source made it (an order placed with its item after orders was copied,
// before items was), which only the stream brings. Checked, that chunk
// failed with error 1452 at every run. The copy only upserts, so no
// cascade is skipped.
func (t *Target) CopyChunk(ctx context.Context, m *TableMap, rows [][]any, p TableProgress, shared settler) error {
	conn, err := t.DB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("copy %s: %w", m.SourceName(), err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION foreign_key_checks = 0"); err != nil {
		return fmt.Errorf("copy %s: %w", m.SourceName(), err)
	}
	defer func() {
		// The connection goes back to the pool checking foreign keys
		// again, or not at all.
		// Even when ctx has ended, but not for ever on a target gone silent.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := conn.ExecContext(rctx, "SET SESSION foreign_key_checks = 1"); err != nil {
			conn.Raw(func(any) error { return sqldriver.ErrBadConn })
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("copy %s: %w", m.SourceName(), err)
	}
	defer tx.Rollback()
	// A run killed just after it sent a chunk's commit may still be
	// committing it when this run read the progress. The locking read
	// waits for that commit; when the saved progress is then not the one
	// this chunk was read after, the chunk is given up (errCopyMoved) and
	// the caller reads the progress again. Written anyway, its rows would
	// be written twice, firing the target's triggers twice.
	var saved int64
	var done bool
	err = tx.QueryRowContext(ctx, `SELECT rows_copied, done FROM banyan_cdc_copy WHERE pipeline = ? AND source_table = ? FOR UPDATE`, t.Pipeline, p.Table).Scan(&saved, &done)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("copy %s: read progress: %w", m.SourceName(), err)
	}
	if done || saved != p.Rows-int64(len(rows)) {
		return errCopyMoved
	}
	if len(rows) > 0 {
		if err := upsert(ctx, tx, m, rows, shared); err != nil {
			return fmt.Errorf("copy %s: %w", m.SourceName(), err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO banyan_cdc_copy (pipeline, source_table, last_pk, rows_copied, done) VALUES (?,?,?,?,?)
		ON DUPLICATE KEY UPDATE last_pk=VALUES(last_pk), rows_copied=VALUES(rows_copied), done=VALUES(done)`,
		t.Pipeline, p.Table, storedKey(p.LastPK), p.Rows, p.Done); err != nil {
		return fmt.Errorf("copy %s: save progress: %w", m.SourceName(), err)
	}
	return tx.Commit()
}

// KeyToJSON turns a key's values into ones that survive JSON exactly:
// bytes (and strings, which may hold bytes that are not UTF-8) become
// {"hex": ...}, times become text; numbers stay numbers and must be read
// back with KeyFromJSON from a decoder with UseNumber. As plain JSON
// strings, bytes that are not UTF-8 came back altered and a resumed copy
// or check paged from the wrong key, skipping rows.
func KeyToJSON(key []any) []any {
	if key == nil {
		return nil
	}
	out := make([]any, len(key))
	for i, v := range key {
		switch x := v.(type) {
		case []byte:
			out[i] = map[string]string{"hex": hex.EncodeToString(x)}
		case string:
			out[i] = map[string]string{"hex": hex.EncodeToString([]byte(x))}
		case time.Time:
			out[i] = x.UTC().Format("2006-01-02 15:04:05.999999")
		default:
			out[i] = v
		}
	}
	return out
}

// KeyFromJSON turns a key decoded (with UseNumber) from what KeyToJSON
// wrote back into query arguments: {"hex": ...} into bytes, and numbers
// into int64 or uint64 when they are integers, so that a key beyond 2^53
// is compared exactly (a number sent as text is compared as a double).
func KeyFromJSON(key []any) ([]any, error) {
	for i, v := range key {
		switch x := v.(type) {
		case map[string]any:
			h, ok := x["hex"].(string)
			if !ok || len(x) != 1 {
				return nil, fmt.Errorf("key value %v is not {\"hex\": ...}", v)
			}
			b, err := hex.DecodeString(h)
			if err != nil {
				return nil, fmt.Errorf("key value %q: %w", h, err)
			}
			key[i] = b
		case json.Number:
			if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
				key[i] = n
			} else if u, err := strconv.ParseUint(string(x), 10, 64); err == nil {
				key[i] = u
			} else {
				key[i] = string(x)
			}
		}
	}
	return key, nil
}

// SetPhase moves the checkpoint to a phase (copy done -> stream from
// Start).
func (t *Target) SetPhase(ctx context.Context, cp Checkpoint) error {
	return t.saveCheckpoint(ctx, t.DB, cp)
}

// Applied counts rows applied in one batch, per target table and op.
type Applied map[string]map[Op]int64

// Apply writes a batch of source transactions and the checkpoint after the
// last of them in one target transaction, when the stored checkpoint is
// still the one the batch was read after, from (its applied_pos as text;
// errStreamMoved, and nothing written, otherwise). maps is keyed by
// "db.table" of the source.
//
// A table whose target has no secondary unique key and no foreign key
// (TableMap.Compact) is applied by its final state: the batch is one
// transaction, so the in-between states of a row are never visible, and
// each such table costs one DELETE and one multi-row upsert per 500 rows
// however many changes the batch holds. Other tables keep the binlog's
// order exactly, merging only consecutive changes of the same kind, so a
// unique key can never collide on a state the source never had. shared,
// when set (the stream has not passed cp.CopyEnd yet), settles collisions
// on the unique keys it returns (settle.go).
func (t *Target) Apply(ctx context.Context, maps map[string]*TableMap, batch []*Tx, from string, cp Checkpoint, shared settler) (Applied, error) {
	tx, err := t.DB.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	defer tx.Rollback()
	// The checkpoint moves first: its row lock waits for a killed run's
	// late commit, and a checkpoint that moved on is found before any row
	// is written (a row written on the state that commit left could fail,
	// and stop the stream on a checkpoint it no longer holds).
	if err := t.moveCheckpoint(ctx, tx, from, cp); err != nil {
		return nil, err
	}
	counts := Applied{}
	var run opRun
	flush := func() error {
		if len(run.rows) == 0 {
			return nil
		}
		var err error
		if run.op == Delete {
			err = remove(ctx, tx, run.m, run.rows, shared)
		} else {
			err = upsert(ctx, tx, run.m, run.rows, shared)
		}
		if err != nil {
			return fmt.Errorf("apply to %s: %w", run.m.TargetName(), err)
		}
		run.rows = run.rows[:0]
		return nil
	}
	final := map[*TableMap]*finalState{}
	var finalOrder []*TableMap
	// add takes one primitive change: op Delete or Insert (an upsert),
	// with the full mapped row (before or after), or op Update with the
	// old row of a key change, whose new row comes next.
	var moved []any
	add := func(m *TableMap, op Op, row []any) error {
		if op == Update && m.Compact {
			op = Delete // no foreign key to carry over
		}
		if op == Update {
			if err := flush(); err != nil {
				return err
			}
			moved = row
			return nil
		}
		if moved != nil {
			old := moved
			moved = nil
			if err := rekey(ctx, tx, m, old, row, shared); err != nil {
				return fmt.Errorf("apply to %s: %w", m.TargetName(), err)
			}
			return nil
		}
		if m.Compact {
			fs := final[m]
			if fs == nil {
				fs = &finalState{rows: map[string]finalRow{}}
				final[m] = fs
				finalOrder = append(finalOrder, m)
			}
			key := m.Key(row)
			if op == Delete {
				row = key
			}
			fs.set(keyString(key), finalRow{del: op == Delete, row: row})
			if len(fs.rows) >= finalStateRows {
				// A large transaction: write what is final so far rather
				// than hold every row it touched. Later changes of these
				// keys are applied after it, so each key still ends in its
				// last state.
				if err := fs.apply(ctx, tx, m); err != nil {
					return fmt.Errorf("apply to %s: %w", m.TargetName(), err)
				}
				fs.rows, fs.order = map[string]finalRow{}, nil
			}
			return nil
		}
		if run.m != m || run.op != op || len(run.rows) >= 500 {
			if err := flush(); err != nil {
				return err
			}
			run.m, run.op = m, op
		}
		run.rows = append(run.rows, row)
		return nil
	}
	for _, stx := range batch {
		err := stx.Each(func(c Change) error {
			m := maps[c.Schema+"."+c.Table]
			if m == nil {
				return nil
			}
			index := columnIndex(c.Columns)
			if counts[m.TargetName()] == nil {
				counts[m.TargetName()] = map[Op]int64{}
			}
			counts[m.TargetName()][c.Op]++
			return eachWrite(m, index, c, func(op Op, row []any) error { return add(m, op, row) })
		})
		if err != nil {
			return nil, err
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	for _, m := range finalOrder {
		if err := final[m].apply(ctx, tx, m); err != nil {
			return nil, fmt.Errorf("apply to %s: %w", m.TargetName(), err)
		}
	}
	if err := t.saveStats(ctx, tx, counts); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("apply: commit: %w", err)
	}
	return counts, nil
}

// saveStats adds a batch's counters in one statement.
func (t *Target) saveStats(ctx context.Context, x execer, counts Applied) error {
	var b strings.Builder
	var args []any
	for table, ops := range counts {
		for op, n := range ops {
			if len(args) > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?,?,?,?)")
			args = append(args, t.Pipeline, table, op.String(), n)
		}
	}
	if len(args) == 0 {
		return nil
	}
	if _, err := x.ExecContext(ctx, `INSERT INTO banyan_cdc_stats (pipeline, target_table, op, row_count) VALUES `+b.String()+`
		ON DUPLICATE KEY UPDATE row_count = row_count + VALUES(row_count)`, args...); err != nil {
		return fmt.Errorf("apply: stats: %w", err)
	}
	return nil
}

// finalStateRows caps the rows a finalState holds before it is written:
// with a large source transaction, holding the final row of every key it
// touched cost memory in proportion to the transaction, which the spill
// file (spill.go) is there to avoid.
const finalStateRows = 10000

// finalState is the last change of each row of one table in a batch, in
// the order rows were first touched.
type finalState struct {
	rows  map[string]finalRow
	order []string
}

type finalRow struct {
	del bool
	row []any // the key when del, the full mapped row otherwise
}

func (f *finalState) set(key string, r finalRow) {
	if _, seen := f.rows[key]; !seen {
		f.order = append(f.order, key)
	}
	f.rows[key] = r
}

// apply writes the final states: the deletes, then the upserts, each as
// multi-row statements of at most 500 rows. Keys are disjoint, so the
// order between the two does not matter.
func (f *finalState) apply(ctx context.Context, x execer, m *TableMap) error {
	var dels, ups [][]any
	for _, k := range f.order {
		if r := f.rows[k]; r.del {
			dels = append(dels, r.row)
		} else {
			ups = append(ups, r.row)
		}
	}
	for start := 0; start < len(dels); start += 500 {
		if err := deleteKeys(ctx, x, m, dels[start:min(start+500, len(dels))]); err != nil {
			return err
		}
	}
	for start := 0; start < len(ups); start += 500 {
		if err := upsertRows(ctx, x, m, ups[start:min(start+500, len(ups))]); err != nil {
			return err
		}
	}
	return nil
}

// keyString identifies a key within one batch.
func keyString(key []any) string {
	var b strings.Builder
	for _, v := range key {
		fmt.Fprintf(&b, "%T:%v\x00", v, v)
	}
	return b.String()
}

type opRun struct {
	m    *TableMap
	op   Op
	rows [][]any
}

func columnIndex(cols []Column) map[string]int {
	idx := make(map[string]int, len(cols))
	for i, c := range cols {
		idx[c.Name] = i
	}
	return idx
}

func sameKey(a, b []any) bool {
	for i := range a {
		if fmt.Sprint(a[i]) != fmt.Sprint(b[i]) {
			return false
		}
	}
	return true
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func targetTable(m *TableMap) string {
	return quoteIdent(m.TargetSchema) + "." + quoteIdent(m.TargetTable)
}

// upsert writes rows as upsertRows does. With shared set (the copy, and
// the stream until it passes the copy's end; settle.go), a row whose
// referenced row is missing is written without the foreign key check,
// and rows that meet another row on a unique key the source enforces too
// are written one at a time, each after deleting the rows met; otherwise
// the collision is the error.
func upsert(ctx context.Context, x execer, m *TableMap, rows [][]any, shared settler) error {
	if shared == nil {
		return upsertError(m, upsertRows(ctx, x, m, rows))
	}
	err := upsertOrphans(ctx, x, m, rows)
	if err == nil || !collision(m, err) {
		return upsertError(m, err)
	}
	keys, kerr := shared(ctx, m)
	if kerr != nil {
		return errors.Join(upsertError(m, err), kerr)
	}
	if len(keys) == 0 {
		return upsertError(m, err)
	}
	return upsertError(m, settle(ctx, x, m, rows, keys))
}

// upsertOrphans writes rows as upsertRows does and, when a row's
// referenced row is missing, again without the foreign key check.
func upsertOrphans(ctx context.Context, x execer, m *TableMap, rows [][]any) error {
	err := upsertRows(ctx, x, m, rows)
	if missingReferenced(err) {
		// The failed statement was rolled back on its own; the
		// transaction goes on.
		err = unchecked(ctx, x, func() error { return upsertRows(ctx, x, m, rows) })
	}
	return err
}

// upsertRows writes rows as one multi-row INSERT ... ON DUPLICATE KEY
// UPDATE. Never REPLACE: it deletes and re-inserts, removing rows that
// collide on a secondary unique key and firing deletes the source never
// made.
func upsertRows(ctx context.Context, x execer, m *TableMap, rows [][]any) error {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(targetTable(m))
	b.WriteString(" (")
	for i, c := range m.Cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(c.Target))
	}
	b.WriteString(") VALUES ")
	args := writeTuples(&b, rows, len(m.Cols))
	b.WriteString(" ON DUPLICATE KEY UPDATE ")
	// The row met may be another row, on a unique key other than the
	// mapped one (a constraint the source does not have): then the update
	// would overwrite that row and drop this one, silently. The first
	// assignment makes that an error instead — a NULL into the NOT NULL
	// key (the sessions are strict) — which upsertError explains.
	var same []string
	for _, k := range m.PK {
		n := quoteIdent(m.Cols[k].Target)
		same = append(same, fmt.Sprintf("%s <=> VALUES(%s)", n, n))
	}
	k0 := quoteIdent(m.Cols[m.PK[0]].Target)
	fmt.Fprintf(&b, "%s = IF(%s, %s, NULL)", k0, strings.Join(same, " AND "), k0)
	first := false
	for i, c := range m.Cols {
		if isKeyCol(m, i) {
			continue
		}
		if !first {
			b.WriteString(", ")
		}
		first = false
		fmt.Fprintf(&b, "%s = VALUES(%s)", quoteIdent(c.Target), quoteIdent(c.Target))
	}
	_, err := x.ExecContext(ctx, b.String(), args...)
	return err
}

// eachWrite hands fn the target writes one source change comes to, in
// order: an insert an upsert (op Insert, the row), a delete a delete by
// key (op Delete, the row as it was), an update an upsert; when the update
// changed the key, the upsert comes after the old row (op Update), which
// rekey moves to the new key, or a plain delete removes.
func eachWrite(m *TableMap, index map[string]int, c Change, fn func(op Op, row []any) error) error {
	if c.Op == Delete {
		before, err := m.Row(index, c.Before)
		if err != nil {
			return fmt.Errorf("%s: %w", m.SourceName(), err)
		}
		return fn(Delete, before)
	}
	after, err := m.Row(index, c.After)
	if err != nil {
		return fmt.Errorf("%s: %w", m.SourceName(), err)
	}
	if c.Op == Update {
		before, err := m.Row(index, c.Before)
		if err != nil {
			return fmt.Errorf("%s: %w", m.SourceName(), err)
		}
		if !sameKey(m.Key(before), m.Key(after)) {
			// The primary key changed: the old row, then the new one.
			if err := fn(Update, before); err != nil {
				return err
			}
		}
	}
	return fn(Insert, after)
}

// upsertError explains the error of the guard in upsert.
func upsertError(m *TableMap, err error) error {
	if guardTripped(m, err) {
		return fmt.Errorf("a row collides with another row of %s on a unique key other than (%s): a key the source does not enforce, or a target row the source does not have; banyan will not overwrite the other row: %w", m.TargetName(), strings.Join(keyTargets(m), ", "), err)
	}
	return err
}

// guardTripped reports whether err is upsert's guard refusing a row that
// met another on a unique key other than the mapped one (the key's first
// column set to NULL, error 1048).
func guardTripped(m *TableMap, err error) bool {
	var me *driver.MySQLError
	return errors.As(err, &me) && me.Number == 1048 && strings.Contains(me.Message, "'"+m.Cols[m.PK[0]].Target+"'")
}

func keyTargets(m *TableMap) []string {
	out := make([]string, len(m.PK))
	for i, k := range m.PK {
		out[i] = m.Cols[k].Target
	}
	return out
}

// writeTuples writes one "(?, …)" placeholder tuple of width values per
// row, comma-separated, and returns the rows' values as the statement's
// arguments.
func writeTuples(b *strings.Builder, rows [][]any, width int) []any {
	ph := "(" + strings.TrimSuffix(strings.Repeat("?,", width), ",") + ")"
	args := make([]any, 0, len(rows)*width)
	for i, r := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(ph)
		args = append(args, r...)
	}
	return args
}

func isKeyCol(m *TableMap, i int) bool {
	for _, k := range m.PK {
		if k == i {
			return true
		}
	}
	return false
}

// remove deletes rows (full mapped rows, as they were on the source) by
// primary key. With shared set (the stream has not passed the copy's end;
// settle.go), a delete that a RESTRICT or NO ACTION reference refuses, or
// that finds a row missing, is done again row by row: a row still refused
// is deleted without the foreign key check, and a missing row is written
// as it was and deleted again, so the target's cascades run.
func remove(ctx context.Context, x execer, m *TableMap, rows [][]any, shared settler) error {
	keys := make([][]any, len(rows))
	for i, r := range rows {
		keys[i] = m.Key(r)
	}
	n, err := deleteCount(ctx, x, m, keys)
	if shared == nil || err == nil && n == int64(len(keys)) {
		return err
	}
	if err != nil && !stillReferenced(err) {
		return err
	}
	// A refused statement was rolled back on its own; the transaction
	// goes on. Row by row, so the other rows' deletes keep the check and
	// the target's cascades on them still run.
	for _, r := range rows {
		if err := removeOne(ctx, x, m, r, shared); err != nil {
			return err
		}
	}
	return nil
}

// removeOne deletes one row in the window (remove).
func removeOne(ctx context.Context, x execer, m *TableMap, row []any, shared settler) error {
	key := [][]any{m.Key(row)}
	del := func() (int64, error) {
		n, err := deleteCount(ctx, x, m, key)
		if stillReferenced(err) {
			err = unchecked(ctx, x, func() error { return deleteKeys(ctx, x, m, key) })
			n = 1
		}
		return n, err
	}
	n, err := del()
	if err != nil || n > 0 {
		return err
	}
	// The copy read the table after the source deleted the row. Rows the
	// replay wrote onto it meanwhile (without the check) went with it on
	// the source by a cascade its binlog does not hold: the row is put
	// back as it was and deleted, so the target's own cascade takes them.
	// If the target refuses the row as it was for good (a key or a check
	// the source does not have), that is undone and the delete stays the
	// no-op it was before.
	_, err = undoable(ctx, x, "banyan_gone", func() (bool, error) {
		err := upsert(ctx, x, m, [][]any{row}, shared)
		if err == nil {
			_, err = del()
		}
		return true, err
	})
	return err
}

// undoable runs try after SAVEPOINT name and reports whether it did its
// work. When try fails for good (permanent) or reports it did not, what
// it wrote is rolled back to the savepoint and undoable reports false
// with no error; a transient error (a lock wait or a lost connection: the
// batch is tried again) is returned as it is.
func undoable(ctx context.Context, x execer, name string, try func() (bool, error)) (bool, error) {
	if _, err := x.ExecContext(ctx, "SAVEPOINT "+name); err != nil {
		return false, err
	}
	done, err := try()
	switch {
	case err == nil && done:
		return true, nil
	case err != nil && !permanent(err):
		return false, err
	}
	if _, rerr := x.ExecContext(ctx, "ROLLBACK TO SAVEPOINT "+name); rerr != nil {
		return false, errors.Join(err, rerr)
	}
	return false, nil
}

// rekey applies an update that changed a row's primary key from old's to
// row's as one UPDATE of the old row, so that the target's foreign keys
// act on it as the source's did: an ON UPDATE CASCADE moves the children
// to the new key. A delete and an insert, as before, made an ON DELETE
// CASCADE remove them (the source's cascade is not in its binlog: the
// children kept their rows, now under the new key), and RESTRICT stopped
// the stream. When the old row is missing, or the target refuses the
// update for good (a RESTRICT on update, a unique value held by another
// row), the old row is deleted and the new one upserted, as before.
func rekey(ctx context.Context, x execer, m *TableMap, old, row []any, shared settler) error {
	var b strings.Builder
	b.WriteString("UPDATE ")
	b.WriteString(targetTable(m))
	b.WriteString(" SET ")
	args := make([]any, 0, len(row)+len(m.PK))
	for i, c := range m.Cols {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s = ?", quoteIdent(c.Target))
		args = append(args, row[i])
	}
	b.WriteString(" WHERE ")
	args = writeMatch(&b, m, m.PK, old, args)
	update := func() (int64, error) { return execCount(ctx, x, b.String(), args) }
	n, err := update()
	switch {
	case err == nil && n > 0:
		return nil
	case err != nil && !permanent(err):
		return err
	}
	// The failed statement was rolled back on its own; the transaction
	// goes on.
	if shared != nil {
		// In the copy's window (settle.go) the target may hold the new key
		// already, copied in a later state, or miss the old row, which the
		// copy read after the source renumbered it, while rows the replay
		// wrote reference it. The new key's row is deleted without the
		// check (its children stay and find it again), the old row is put
		// back as it was when missing, and the update tried again, so the
		// target's ON UPDATE CASCADE still moves the children.
		missing := err == nil
		done, err := undoable(ctx, x, "banyan_rekey", func() (bool, error) {
			err := unchecked(ctx, x, func() error { return deleteKeys(ctx, x, m, [][]any{m.Key(row)}) })
			if err == nil && missing {
				err = upsert(ctx, x, m, [][]any{old}, shared)
			}
			if err != nil {
				return false, err
			}
			n, err := update()
			return n > 0, err
		})
		if done || err != nil {
			return err
		}
	}
	if err := remove(ctx, x, m, [][]any{old}, shared); err != nil {
		return err
	}
	return upsert(ctx, x, m, [][]any{row}, shared)
}

// writeMatch writes "col = ?" for each of m's columns at cols, joined by
// AND, and returns args with row's values of them appended.
func writeMatch(b *strings.Builder, m *TableMap, cols []int, row []any, args []any) []any {
	for i, c := range cols {
		if i > 0 {
			b.WriteString(" AND ")
		}
		fmt.Fprintf(b, "%s = ?", quoteIdent(m.Cols[c].Target))
		args = append(args, row[c])
	}
	return args
}

// deleteKeys deletes rows by primary key.
func deleteKeys(ctx context.Context, x execer, m *TableMap, keys [][]any) error {
	_, err := deleteCount(ctx, x, m, keys)
	return err
}

// deleteCount deletes rows by primary key and returns how many it deleted.
func deleteCount(ctx context.Context, x execer, m *TableMap, keys [][]any) (int64, error) {
	var b strings.Builder
	b.WriteString("DELETE FROM ")
	b.WriteString(targetTable(m))
	b.WriteString(" WHERE (")
	for i, k := range m.PK {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(m.Cols[k].Target))
	}
	b.WriteString(") IN (")
	args := writeTuples(&b, keys, len(m.PK))
	b.WriteString(")")
	return execCount(ctx, x, b.String(), args)
}

// execCount runs statement q and returns how many rows it changed.
func execCount(ctx context.Context, x execer, q string, args []any) (int64, error) {
	res, err := x.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Stats returns rows applied by streaming per target table and op.
func (t *Target) Stats(ctx context.Context) (map[string]map[string]int64, error) {
	rows, err := t.DB.QueryContext(ctx, `SELECT target_table, op, row_count FROM banyan_cdc_stats WHERE pipeline = ? ORDER BY target_table, op`, t.Pipeline)
	if err != nil {
		return nil, fmt.Errorf("read stats: %w", err)
	}
	defer rows.Close()
	out := map[string]map[string]int64{}
	for rows.Next() {
		var table, op string
		var n int64
		if err := rows.Scan(&table, &op, &n); err != nil {
			return nil, err
		}
		if out[table] == nil {
			out[table] = map[string]int64{}
		}
		out[table][op] = n
	}
	return out, rows.Err()
}

// Copies returns every table's copy progress.
func (t *Target) Copies(ctx context.Context) ([]TableProgress, error) {
	rows, err := t.DB.QueryContext(ctx, `SELECT source_table, rows_copied, done FROM banyan_cdc_copy WHERE pipeline = ? ORDER BY source_table`, t.Pipeline)
	if err != nil {
		return nil, fmt.Errorf("read copy progress: %w", err)
	}
	defer rows.Close()
	var out []TableProgress
	for rows.Next() {
		var p TableProgress
		if err := rows.Scan(&p.Table, &p.Rows, &p.Done); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// MappedColumns reads the columns a table's mapping had when it was last
// recorded.
func (t *Target) MappedColumns(ctx context.Context, table string) ([]ColMap, bool, error) {
	var raw string
	err := t.DB.QueryRowContext(ctx, `SELECT columns FROM banyan_cdc_mapping WHERE pipeline = ? AND source_table = ?`, t.Pipeline, table).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read recorded mapping of %s: %w", table, err)
	}
	var cols []ColMap
	if err := json.Unmarshal([]byte(raw), &cols); err != nil {
		return nil, false, fmt.Errorf("read recorded mapping of %s: %w", table, err)
	}
	return cols, true, nil
}

// SaveMappedColumns records a table's mapped columns.
func (t *Target) SaveMappedColumns(ctx context.Context, m *TableMap) error {
	raw, _ := json.Marshal(m.Cols)
	_, err := t.DB.ExecContext(ctx, `INSERT INTO banyan_cdc_mapping (pipeline, source_table, columns) VALUES (?,?,?)
		ON DUPLICATE KEY UPDATE columns = VALUES(columns)`, t.Pipeline, m.SourceName(), string(raw))
	if err != nil {
		return fmt.Errorf("record mapping of %s: %w", m.SourceName(), err)
	}
	return nil
}

// ColumnNames lists a target table's columns (lower-cased).
func (t *Target) ColumnNames(ctx context.Context, schema, table string) (map[string]bool, error) {
	rows, err := t.DB.QueryContext(ctx, `SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`, schema, table)
	if err != nil {
		return nil, fmt.Errorf("read columns of target %s.%s: %w", schema, table, err)
	}
	defer rows.Close()
	names := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names[strings.ToLower(n)] = true
	}
	return names, rows.Err()
}

// KeyEnforced reports whether the target table has a PRIMARY or UNIQUE key
// of NOT NULL columns on exactly the columns cols: the upserts and deletes by key need one, or
// every update would add a row.
func (t *Target) KeyEnforced(ctx context.Context, schema, table string, cols []string) (bool, error) {
	// Only a key on NOT NULL columns, each whole (no prefix): a nullable
	// one lets rows in with a NULL key, and a prefix one calls rows equal
	// that are not, and upsert's guard relies on the key being NOT NULL.
	rows, err := t.DB.QueryContext(ctx, `SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0
		AND INDEX_NAME NOT IN (SELECT INDEX_NAME FROM information_schema.STATISTICS
			WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND (NULLABLE = 'YES' OR SUB_PART IS NOT NULL))`, schema, table, schema, table)
	if err != nil {
		return false, fmt.Errorf("read keys of target %s.%s: %w", schema, table, err)
	}
	defer rows.Close()
	keys := map[string]map[string]bool{}
	for rows.Next() {
		var index, col string
		if err := rows.Scan(&index, &col); err != nil {
			return false, err
		}
		if keys[index] == nil {
			keys[index] = map[string]bool{}
		}
		keys[index][strings.ToLower(col)] = true
	}
	if err := rows.Err(); err != nil {
		return false, err
	}
	for _, k := range keys {
		if len(k) != len(cols) {
			continue
		}
		all := true
		for _, c := range cols {
			all = all && k[strings.ToLower(c)]
		}
		if all {
			return true, nil
		}
	}
	return false, nil
}

// Compactable reports whether a target table may be applied by final
// state: no unique key besides the primary key, and no foreign key to or
// from it.
func (t *Target) Compactable(ctx context.Context, schema, table string) (bool, error) {
	var n int
	err := t.DB.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM information_schema.STATISTICS
		  WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 AND INDEX_NAME <> 'PRIMARY')
		+ (SELECT COUNT(*) FROM information_schema.KEY_COLUMN_USAGE
		  WHERE REFERENCED_TABLE_NAME IS NOT NULL AND ((TABLE_SCHEMA = ? AND TABLE_NAME = ?) OR (REFERENCED_TABLE_SCHEMA = ? AND REFERENCED_TABLE_NAME = ?)))`,
		schema, table, schema, table, schema, table).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("read keys of target %s.%s: %w", schema, table, err)
	}
	return n == 0, nil
}
