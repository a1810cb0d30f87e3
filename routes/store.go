package routes

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"modernc.org/sqlite" // pure-Go SQLite driver, registered as "sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Edit is one entry of the weight history.
type Edit struct {
	Seq    int64     `json:"seq"`
	At     time.Time `json:"at"`
	Who    string    `json:"who"`
	Route  string    `json:"route"`
	Action string    `json:"action"` // set, rollback or config
	Old    Split     `json:"old"`
	New    Split     `json:"new"`
	Reason string    `json:"reason,omitempty"`
	// Reverts is the Seq of the edit a rollback undid.
	Reverts int64 `json:"reverts,omitempty"`
	// prior is the route's bucket assignment before the edit, kept so a
	// rollback can give every user back to the backend they were on; nil
	// for a route's first edit and for edits stored before it was kept.
	prior *Assignment
}

// Edit actions.
const (
	ActionSet      = "set"
	ActionRollback = "rollback"
	ActionConfig   = "config"
)

// Store keeps live splits, bucket assignments and the edit history in an
// embedded SQLite file, so edits survive a restart. One process owns a
// store at a time: the file stays locked while it is open.
type Store struct {
	db *sql.DB
}

const storeSchema = `
CREATE TABLE IF NOT EXISTS route_state (
	route      TEXT PRIMARY KEY,
	split      TEXT NOT NULL,
	file_split TEXT NOT NULL,
	assignment TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS route_history (
	seq     INTEGER PRIMARY KEY,
	at      TEXT NOT NULL,
	who     TEXT NOT NULL,
	route   TEXT NOT NULL,
	action  TEXT NOT NULL,
	old     TEXT,
	new     TEXT NOT NULL,
	reason  TEXT NOT NULL DEFAULT '',
	reverts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS route_history_route ON route_history(route, seq);
`

// priorColumn holds each edit's assignment before it; state files made
// before it existed get it added.
const priorColumn = "prior_assignment"

// ErrStateInUse is returned by OpenStore when another process holds the
// state file.
var ErrStateInUse = errors.New("state file is in use by another banyan")

// OpenStore opens (creating if needed) the state file at path.
func OpenStore(path string) (*Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("open state %s: %w", path, err)
		}
	}
	// Exclusive locking: the one connection keeps the write lock it takes
	// below until it closes, so a second banyan (whose edits would take
	// history numbers this one uses) cannot open the file. The busy
	// timeout lets a restart wait for the process it replaces to let go.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=locking_mode(EXCLUSIVE)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)")
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	err = migrate(db)
	if err == nil {
		_, err = db.Exec(`BEGIN IMMEDIATE; COMMIT`)
	}
	if err != nil {
		db.Close()
		var se *sqlite.Error
		if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY {
			return nil, fmt.Errorf("%w: %s (a running banyan serve keeps its state file; stop it, or give this config its own state:)", ErrStateInUse, path)
		}
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// migrate creates the tables, and adds the columns newer versions keep to
// the tables of an older state file.
func migrate(db *sql.DB) error {
	if _, err := db.Exec(storeSchema); err != nil {
		return err
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM pragma_table_info('route_history') WHERE name = ?`, priorColumn).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		if _, err := db.Exec(`ALTER TABLE route_history ADD COLUMN ` + priorColumn + ` TEXT`); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) load(ctx context.Context) (map[string]routeState, int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT route, split, file_split, assignment FROM route_state`)
	if err != nil {
		return nil, 0, fmt.Errorf("load state: %w", err)
	}
	defer rows.Close()
	states := map[string]routeState{}
	for rows.Next() {
		var name, split, fileSplit, assign string
		if err := rows.Scan(&name, &split, &fileSplit, &assign); err != nil {
			return nil, 0, fmt.Errorf("load state: %w", err)
		}
		var st routeState
		if err := errors.Join(json.Unmarshal([]byte(split), &st.Split), json.Unmarshal([]byte(fileSplit), &st.FileSplit), json.Unmarshal([]byte(assign), &st.Assign)); err != nil {
			return nil, 0, fmt.Errorf("load state of route %s: %w", name, err)
		}
		states[name] = st
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("load state: %w", err)
	}
	var seq sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(seq) FROM route_history`).Scan(&seq); err != nil {
		return nil, 0, fmt.Errorf("load state: %w", err)
	}
	return states, seq.Int64, nil
}

// save writes changed route states and their history entries in one
// transaction: either both land or neither does.
func (s *Store) save(ctx context.Context, states map[string]routeState, edits []Edit) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	defer tx.Rollback()
	for name, st := range states {
		split, _ := json.Marshal(st.Split)
		fileSplit, _ := json.Marshal(st.FileSplit)
		assign, _ := json.Marshal(st.Assign)
		if _, err := tx.ExecContext(ctx, `INSERT INTO route_state(route, split, file_split, assignment) VALUES(?,?,?,?)
			ON CONFLICT(route) DO UPDATE SET split=excluded.split, file_split=excluded.file_split, assignment=excluded.assignment`,
			name, string(split), string(fileSplit), string(assign)); err != nil {
			return fmt.Errorf("save state of route %s: %w", name, err)
		}
	}
	for _, e := range edits {
		var old any
		if e.Old != nil {
			b, _ := json.Marshal(e.Old)
			old = string(b)
		}
		var prior any
		if e.prior != nil {
			b, _ := json.Marshal(e.prior)
			prior = string(b)
		}
		nw, _ := json.Marshal(e.New)
		if _, err := tx.ExecContext(ctx, `INSERT INTO route_history(seq, at, who, route, action, old, new, reason, reverts, `+priorColumn+`) VALUES(?,?,?,?,?,?,?,?,?,?)`,
			e.Seq, e.At.UTC().Format(time.RFC3339Nano), e.Who, e.Route, e.Action, old, string(nw), e.Reason, e.Reverts, prior); err != nil {
			return fmt.Errorf("save history: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// History returns edits newest first, of one route when route is not "".
// limit <= 0 means all.
func (s *Store) History(ctx context.Context, route string, limit int) ([]Edit, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.db.QueryContext(ctx, `SELECT seq, at, who, route, action, old, new, reason, reverts, `+priorColumn+` FROM route_history
		WHERE ? = '' OR route = ? ORDER BY seq DESC LIMIT ?`, route, route, limit)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	defer rows.Close()
	var out []Edit
	for rows.Next() {
		var e Edit
		var at string
		var old, prior sql.NullString
		var nw string
		if err := rows.Scan(&e.Seq, &at, &e.Who, &e.Route, &e.Action, &old, &nw, &e.Reason, &e.Reverts, &prior); err != nil {
			return nil, fmt.Errorf("read history: %w", err)
		}
		e.At, _ = time.Parse(time.RFC3339Nano, at)
		if old.Valid {
			if err := json.Unmarshal([]byte(old.String), &e.Old); err != nil {
				return nil, fmt.Errorf("read history %d: %w", e.Seq, err)
			}
		}
		if err := json.Unmarshal([]byte(nw), &e.New); err != nil {
			return nil, fmt.Errorf("read history %d: %w", e.Seq, err)
		}
		if prior.Valid {
			e.prior = new(Assignment)
			if err := json.Unmarshal([]byte(prior.String), e.prior); err != nil {
				return nil, fmt.Errorf("read history %d: %w", e.Seq, err)
			}
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
