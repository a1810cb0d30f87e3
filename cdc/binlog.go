package cdc

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	driver "github.com/go-sql-driver/mysql"
	"golang.org/x/text/encoding"
)

// Event is what a Source sends: one committed transaction or one DDL.
type Event struct {
	Tx  *Tx
	DDL *DDL
}

// ErrBinlogPurged means the source no longer has the binlog at the
// checkpoint; only a new initial copy (--resnapshot) can continue.
var ErrBinlogPurged = errors.New("the source has purged the binlog at the checkpoint")

// BinlogSource reads a MySQL/MariaDB binlog with go-mysql as a replica.
type BinlogSource struct {
	Flavor   string // mysql or mariadb
	ServerID uint32
	UseGTID  bool
	// Watch reports whether a table's row changes are wanted; others are
	// dropped right after decoding.
	Watch func(schema, table string) bool
	// Mapped reports whether a table named in SQL text is mapped (names
	// compared as the server may, without case); nil: every table is.
	Mapped func(schema, table string) bool
	Log    *slog.Logger
	// SpillRows is how many row changes of one transaction are held in
	// memory before they go to a temporary file in SpillDir (cdc.spill_rows
	// and cdc.spill_dir); 0 holds them all in memory.
	SpillRows int
	SpillDir  string

	host     string
	port     uint16
	user, pw string
	dsn      string
}

// NewBinlogSource parses a go-sql-driver DSN for the replication
// connection.
func NewBinlogSource(dsn, flavor string, serverID uint32, useGTID bool) (*BinlogSource, error) {
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("source dsn: %w", err)
	}
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("source dsn address %q: %w", cfg.Addr, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("source dsn port %q: %w", portStr, err)
	}
	return &BinlogSource{Flavor: flavor, ServerID: serverID, UseGTID: useGTID, host: host, port: uint16(port), user: cfg.User, pw: cfg.Passwd, dsn: dsn, Log: slog.Default()}, nil
}

// Stream sends every committed transaction and DDL after from to out, in
// binlog order, until ctx ends or the connection fails. It returns
// ctx.Err() on cancellation; any other error means the caller should
// resume from its last applied position.
func (s *BinlogSource) Stream(ctx context.Context, from Position, out chan<- Event) error {
	return s.stream(ctx, from, out, nil)
}

// stream is Stream; with gate set, a transaction is sent only once the
// gate has room for the changes it holds in memory, which the receiver
// gives back once it has applied them.
func (s *BinlogSource) stream(ctx context.Context, from Position, out chan<- Event, gate *rowGate) error {
	// Read at each start, into locals: a Stream of an earlier connection
	// may still be winding down.
	var charsets map[uint64]string
	var nontx map[string]bool
	{
		db, err := sql.Open("mysql", s.dsn)
		if err != nil {
			return fmt.Errorf("source dsn: %w", err)
		}
		charsets, err = loadCharsets(ctx, db)
		if err == nil {
			nontx, err = loadNonTransactional(ctx, db)
		}
		db.Close()
		if err != nil {
			return err
		}
	}
	// undone keeps, of changes a ROLLBACK undid, those on tables without
	// transactions: they persisted on the source.
	undone := func(cs []Change) []Change {
		var kept []Change
		for _, c := range cs {
			if nontx[c.Schema+"."+c.Table] {
				kept = append(kept, c)
			}
		}
		return kept
	}
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: s.ServerID, Flavor: s.Flavor, Host: s.host, Port: s.port, User: s.user, Password: s.pw,
		Charset: "utf8mb4", UseDecimal: false, ParseTime: false, TimestampStringLocation: time.UTC,
		HeartbeatPeriod: 5 * time.Second, ReadTimeout: 30 * time.Second,
		// Reconnects are ours: we resume from the applied checkpoint.
		DisableRetrySync: true,
		// go-mysql decodes events ahead of us into a queue of 10,240 by
		// default: with rows events of about 8 KB, some 80,000 decoded
		// row changes, 200 to 300 MB, whatever spill_rows and the queue
		// behind the stream hold. 512 events still keep the decoder
		// busy while a change is spilled or waits.
		EventCacheCount: 512,
		Logger:          slog.New(slog.DiscardHandler),
	})
	defer syncer.Close()

	cur := from
	var gset mysql.GTIDSet
	var streamer *replication.BinlogStreamer
	var err error
	if s.UseGTID {
		if gset, err = mysql.ParseGTIDSet(s.Flavor, from.GTID); err != nil {
			return fmt.Errorf("checkpoint gtid %q: %w", from.GTID, err)
		}
		streamer, err = syncer.StartSyncGTID(gset.Clone())
	} else {
		// The GTIDs are followed too, so that the checkpoint's GTID stays
		// the same point as its file:pos (status shows both; it stayed at
		// the copy's start). A source without GTIDs has none to follow.
		if from.GTID != "" {
			if gset, err = mysql.ParseGTIDSet(s.Flavor, from.GTID); err != nil {
				gset, cur.GTID = nil, ""
			}
		}
		streamer, err = syncer.StartSync(mysql.Position{Name: from.File, Pos: from.Pos})
	}
	if err != nil {
		return fmt.Errorf("start binlog stream at %s: %w", from, err)
	}

	var tx *Tx
	defer func() {
		if tx != nil {
			tx.Release() // read part way when the stream ended
		}
	}()
	policy := spillPolicy{rows: s.SpillRows, dir: s.SpillDir}
	var pendingGTID string
	var inTx bool // inside a transaction's group, between BEGIN and its end
	// savepoints maps a savepoint of the open transaction to how many
	// changes it held when the savepoint was set.
	savepoints := map[string]int{}
	commit := func(h *replication.EventHeader) error {
		if pendingGTID != "" && gset != nil {
			switch err := gset.Update(pendingGTID); {
			case err == nil:
				cur.GTID = gset.String()
			case s.UseGTID:
				return fmt.Errorf("gtid %s: %w", pendingGTID, err)
			default: // by file:pos the GTID only informs: stop following it
				gset, cur.GTID = nil, ""
			}
		}
		pendingGTID = ""
		cur.Pos = h.LogPos
		return nil
	}
	send := func(e Event) error {
		if gate != nil && e.Tx != nil {
			e.Tx.held = len(e.Tx.Changes)
			if err := gate.acquire(ctx, e.Tx.held); err != nil {
				return err
			}
		}
		select {
		case out <- e:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// between moves a file:pos checkpoint over an event written between
	// transactions: a rotation to the next file and the events that open
	// a file. Otherwise, after a rotation, a quiet source left the
	// checkpoint at the end of the old file: status showed a lag growing
	// while nothing was behind, and once the old file was purged the next
	// run stopped as if the binlog it needed were gone. It sends the
	// position as a transaction without changes. By GTID the resume point
	// does not depend on the file, so nothing is sent.
	between := func(h *replication.EventHeader, pos uint32) error {
		if s.UseGTID || tx != nil || inTx || h.Timestamp == 0 {
			return nil // the server's own notes carry no time
		}
		if pos != 0 {
			if pos <= cur.Pos {
				return nil // a file's opening events sent again at the start
			}
			cur.Pos = pos
		}
		return send(Event{Tx: &Tx{End: cur, Timestamp: h.Timestamp}})
	}
	// endTx closes the current transaction at its commit event and sends it.
	endTx := func(h *replication.EventHeader) error {
		if err := commit(h); err != nil {
			return err
		}
		if tx == nil {
			tx = &Tx{Timestamp: h.Timestamp}
		}
		tx.End = cur
		err := send(Event{Tx: tx})
		if err == nil {
			tx = nil // the receiver's now; unsent, the deferred Release frees it
		}
		return err
	}
	// begin opens the transaction a GTID event starts.
	begin := func(ts uint32) {
		if tx != nil {
			tx.Release()
		}
		tx = &Tx{Timestamp: ts}
		clear(savepoints)
	}
	for {
		ev, err := streamer.GetEvent(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if isPurged(err) {
				return fmt.Errorf("%w (%s): %v", ErrBinlogPurged, from, err)
			}
			return fmt.Errorf("binlog stream: %w", err)
		}
		switch e := ev.Event.(type) {
		case *replication.RotateEvent:
			cur.File, cur.Pos = string(e.NextLogName), uint32(e.Position)
			if err := between(ev.Header, 0); err != nil {
				return err
			}
		case *replication.FormatDescriptionEvent, *replication.MariadbGTIDListEvent, *replication.MariadbBinlogCheckPointEvent, *replication.PreviousGTIDsEvent:
			if err := between(ev.Header, ev.Header.LogPos); err != nil {
				return err
			}
		case *replication.GenericEvent:
			if ev.Header.EventType == replication.XA_PREPARE_LOG_EVENT {
				// The rows are committed later, by an XA COMMIT in another
				// group, or never. Dropping them, or applying them before
				// the source decides, would be wrong: stop and say so.
				return &permanentError{fmt.Errorf("binlog at %s: a two-phase XA transaction was prepared on the source; banyan cannot stream XA PREPARE / XA COMMIT, and stops here rather than lose or guess its rows", cur)}
			}
		case *replication.MariadbGTIDEvent:
			pendingGTID = e.GTID.String()
			begin(ev.Header.Timestamp)
			// A group without FL_STANDALONE ends with a COMMIT or XID:
			// the queries inside it are part of the transaction.
			inTx = !e.IsStandalone()
		case *replication.GTIDEvent:
			next, err := e.GTIDNext()
			if err != nil {
				return fmt.Errorf("gtid event: %w", err)
			}
			pendingGTID = next.String()
			begin(ev.Header.Timestamp)
		case *replication.RowsEvent:
			if tx == nil {
				tx = &Tx{Timestamp: ev.Header.Timestamp}
			}
			schema, table := string(e.Table.Schema), string(e.Table.Table)
			if s.Watch != nil && !s.Watch(schema, table) {
				continue
			}
			if err := appendChanges(tx, e, schema, table, charsets); err != nil {
				return err
			}
			if err := policy.check(tx); err != nil {
				return err
			}
		case *replication.ExecuteLoadQueryEvent:
			// LOAD DATA logged as a statement (binlog_format STATEMENT or
			// MIXED in its session): the file's bytes and the statement,
			// not rows. Passed over, the rows were lost.
			schema, q := loadQuery(ev.RawData, e)
			if table, ok := s.namesMapped(schema, q); ok {
				return &permanentError{fmt.Errorf("binlog at %s: rows loaded into the mapped table %s were logged as a LOAD DATA statement, not as rows (the session that ran it had binlog_format STATEMENT or MIXED); banyan cannot apply it and stops before its transaction\n  statement: %s\n  make every session that writes the mapped tables use binlog_format=ROW, then run `banyan cdc run --resnapshot`", cur, table, q)}
			}
		case *replication.XIDEvent:
			inTx = false
			if err := endTx(ev.Header); err != nil {
				return err
			}
		case *replication.QueryEvent:
			q := strings.TrimSpace(string(e.Query))
			switch txQuery(q) {
			case txBegin:
				inTx = true
				if tx == nil {
					tx = &Tx{Timestamp: ev.Header.Timestamp}
				}
				continue
			case txEnd:
				// COMMIT ends a group on non-transactional tables, and so
				// does ROLLBACK: the server logs a rolled-back transaction
				// when it also wrote a table without transactions, whose
				// rows persisted; the others' were undone.
				inTx = false
				if tx != nil && strings.HasPrefix(strings.ToUpper(q), "ROLLBACK") {
					if err := policy.undo(tx, 0, undone); err != nil {
						return err
					}
				}
				if err := endTx(ev.Header); err != nil {
					return err
				}
				continue
			case txInside:
				if inTx {
					// The server writes ROLLBACK TO into the binlog only when
					// it could not cut the undone rows out (the transaction
					// also wrote a non-transactional table): cut them here.
					if tx != nil {
						if err := savepoint(tx, savepoints, q, undone, policy); err != nil {
							return err
						}
					}
					continue
				}
			}
			if inTx && parseDDL(string(e.Schema), q).Verb == "" {
				// A statement inside a transaction's group that is no table
				// DDL: a change logged as SQL text, not rows, by a session
				// whose binlog_format is STATEMENT or MIXED. Taken for a
				// DDL, it ended the group and moved the checkpoint past
				// rows never applied. On an unmapped table it is skipped,
				// and the group goes on.
				if table, ok := s.namesMapped(string(e.Schema), q); ok {
					return &permanentError{fmt.Errorf("binlog at %s: a change to the mapped table %s was logged as an SQL statement, not as rows (the session that made it had binlog_format STATEMENT or MIXED); banyan cannot apply it and stops before its transaction\n  statement: %s\n  make every session that writes the mapped tables use binlog_format=ROW (a SET SESSION binlog_format in a job, or its SUPER or BINLOG ADMIN privilege), then run `banyan cdc run --resnapshot`", cur, table, q)}
				}
				continue
			}
			if err := commit(ev.Header); err != nil {
				return err
			}
			tx = nil
			if err := send(Event{DDL: &DDL{Schema: string(e.Schema), Statement: q, End: cur, Timestamp: ev.Header.Timestamp}}); err != nil {
				return err
			}
		}
	}
}

// namesMapped reports whether SQL text q, run with default database
// schema, names a mapped table (as db.table or alone), and which. Any
// identifier counts, so a column named like a mapped table stops too:
// better than a change lost.
func (s *BinlogSource) namesMapped(schema, q string) (string, bool) {
	toks := ddlTokens(q)
	for i, t := range toks {
		if t.kind != 'w' && t.kind != '`' && t.kind != '"' {
			continue
		}
		db := schema
		if i >= 2 && toks[i-1].kind == '.' {
			db = toks[i-2].text
		}
		if s.Mapped == nil || s.Mapped(db, t.text) {
			return db + "." + t.text, true
		}
	}
	return "", false
}

// loadQuery reads the default database and the statement of an
// Execute_load_query event from its raw bytes (go-mysql decodes only the
// fixed part): header, 26 fixed bytes, status variables, the database and
// a NUL, then the statement, followed by a CRC32 when the binlog has
// checksums.
func loadQuery(raw []byte, e *replication.ExecuteLoadQueryEvent) (schema, query string) {
	if n := len(raw); n > 4 && crc32.ChecksumIEEE(raw[:n-4]) == binary.LittleEndian.Uint32(raw[n-4:]) {
		raw = raw[:n-4]
	}
	at := replication.EventHeaderSize + 26 + int(e.StatusVars)
	end := at + int(e.SchemaLength)
	if end+1 > len(raw) {
		return "", ""
	}
	return string(raw[at:end]), strings.TrimSpace(string(raw[end+1:]))
}

// savepoint applies SAVEPOINT, ROLLBACK TO [SAVEPOINT] and RELEASE
// SAVEPOINT statement q to the open transaction's changes.
func savepoint(tx *Tx, savepoints map[string]int, q string, undone func([]Change) []Change, policy spillPolicy) error {
	f := strings.Fields(q)
	name := func(i int) string {
		if i < len(f) && strings.EqualFold(f[i], "SAVEPOINT") {
			i++
		}
		if i >= len(f) {
			return ""
		}
		return strings.ToLower(strings.Trim(f[i], "`\"';"))
	}
	switch strings.ToUpper(f[0]) {
	case "SAVEPOINT":
		savepoints[name(0)] = tx.Len()
	case "ROLLBACK": // ROLLBACK [WORK] TO [SAVEPOINT] name
		i := 1
		if i < len(f) && strings.EqualFold(f[i], "WORK") {
			i++
		}
		if n, ok := savepoints[name(i+1)]; ok && n <= tx.Len() {
			return policy.undo(tx, n, undone)
		}
	case "RELEASE":
		delete(savepoints, name(1))
	}
	return nil
}

type txQueryKind int

const (
	txOther  txQueryKind = iota // DDL, or anything else
	txBegin                     // BEGIN, XA START
	txEnd                       // COMMIT, ROLLBACK, XA COMMIT ... ONE PHASE
	txInside                    // SAVEPOINT, ROLLBACK TO, RELEASE SAVEPOINT, XA END
)

// txQuery tells the transaction-control statements a binlog group holds
// from DDL.
func txQuery(q string) txQueryKind {
	f := strings.Fields(strings.ToUpper(q))
	if len(f) == 0 {
		return txOther
	}
	switch {
	case f[0] == "BEGIN" || len(f) > 1 && f[0] == "XA" && (f[1] == "START" || f[1] == "BEGIN"):
		return txBegin
	case f[0] == "COMMIT" || f[0] == "ROLLBACK" && !slices.Contains(f[1:min(3, len(f))], "TO"):
		return txEnd
	case len(f) > 1 && f[0] == "XA" && f[1] == "COMMIT":
		return txEnd
	case f[0] == "SAVEPOINT" || f[0] == "ROLLBACK" || f[0] == "RELEASE" || len(f) > 1 && f[0] == "XA" && f[1] == "END":
		return txInside
	}
	return txOther
}

func appendChanges(tx *Tx, e *replication.RowsEvent, schema, table string, charsets map[uint64]string) error {
	names := e.Table.ColumnNameString()
	if len(names) == 0 {
		return fmt.Errorf("table %s.%s: the binlog carries no column names; set binlog_row_metadata=FULL on the source (MySQL 8.0+, MariaDB 10.5+) so rows are never decoded against a wrong schema", schema, table)
	}
	unsigned := e.Table.UnsignedMap()
	cols := make([]Column, len(names))
	for i, n := range names {
		cols[i] = Column{Name: n, Type: e.Table.ColumnType[i], Meta: e.Table.ColumnMeta[i], Unsigned: unsigned[i]}
	}
	enums, sets := e.Table.EnumStrValueMap(), e.Table.SetStrValueMap()
	collations := e.Table.CollationMap()
	// Text in another character set than UTF-8 is converted as the server
	// converts it for the copy; ENUM and SET labels too.
	decoders := map[int]*encoding.Decoder{}
	for _, m := range []map[int]uint64{collations, e.Table.EnumSetCollationMap()} {
		for i, id := range m {
			if id == 63 {
				continue
			}
			dec, err := textDecoder(charsets, id)
			if err != nil {
				return &permanentError{fmt.Errorf("table %s.%s column %s: %w", schema, table, names[i], err)}
			}
			if dec != nil {
				decoders[i] = dec
			}
		}
	}
	var decodeErr error
	decode := func(i int, s string) string {
		dec := decoders[i]
		if dec == nil {
			return s
		}
		out, err := dec.String(s)
		if err != nil && decodeErr == nil {
			decodeErr = &permanentError{fmt.Errorf("table %s.%s column %s: convert %q to UTF-8: %w", schema, table, names[i], s, err)}
		}
		return out
	}
	fix := func(row []any) []any {
		for i, v := range row {
			if _, text := decoders[i]; text && enums[i] == nil && sets[i] == nil {
				switch x := v.(type) {
				case string:
					row[i] = decode(i, x)
				case []byte: // TEXT columns come as bytes
					row[i] = decode(i, string(x))
				}
				continue
			}
			switch {
			case collations[i] == 63: // binary: keep bytes as bytes, never as text
				if s, ok := v.(string); ok {
					b := []byte(s)
					// The binlog drops a BINARY(n) value's trailing zero
					// bytes; the table holds them, and a delete or a key
					// change by the short value would match nothing.
					if n := fixedBinaryLen(cols[i]); len(b) < n {
						b = append(b, make([]byte, n-len(b))...)
					}
					row[i] = b
				}
			case enums[i] != nil:
				if n, ok := v.(int64); ok && n > 0 && int(n) <= len(enums[i]) {
					row[i] = decode(i, enums[i][n-1])
				} else if ok && n == 0 {
					row[i] = ""
				}
			case sets[i] != nil:
				if n, ok := v.(int64); ok {
					var members []string
					for b, name := range sets[i] {
						if n&(1<<b) != 0 {
							members = append(members, name)
						}
					}
					row[i] = decode(i, strings.Join(members, ","))
				}
			}
		}
		return row
	}
	switch e.Type() {
	case replication.EnumRowsEventTypeInsert:
		for _, r := range e.Rows {
			tx.Changes = append(tx.Changes, Change{Op: Insert, Schema: schema, Table: table, Columns: cols, After: fix(r)})
		}
	case replication.EnumRowsEventTypeDelete:
		for _, r := range e.Rows {
			tx.Changes = append(tx.Changes, Change{Op: Delete, Schema: schema, Table: table, Columns: cols, Before: fix(r)})
		}
	case replication.EnumRowsEventTypeUpdate:
		for i := 0; i+1 < len(e.Rows); i += 2 {
			tx.Changes = append(tx.Changes, Change{Op: Update, Schema: schema, Table: table, Columns: cols, Before: fix(e.Rows[i]), After: fix(e.Rows[i+1])})
		}
	default:
		return fmt.Errorf("table %s.%s: unknown rows event", schema, table)
	}
	return decodeErr
}

// fixedBinaryLen is n for a BINARY(n) column (its binlog type is STRING,
// with the real type and the length packed in the metadata), else 0.
func fixedBinaryLen(c Column) int {
	if c.Type != mysql.MYSQL_TYPE_STRING {
		return 0
	}
	b0, b1 := byte(c.Meta>>8), byte(c.Meta)
	if b0 == 0 {
		return 0
	}
	real, n := b0, int(b1)
	if b0&0x30 != 0x30 { // lengths over 255 borrow two bits of the type
		real, n = b0|0x30, int(b1)|int((b0&0x30)^0x30)<<4
	}
	if real != mysql.MYSQL_TYPE_STRING {
		return 0 // ENUM or SET
	}
	return n
}

// isPurged recognises the server's "could not find first log file" (1236)
// answers for a position or GTID that is no longer there.
func isPurged(err error) bool {
	var me *mysql.MyError
	if errors.As(err, &me) && me.Code == 1236 {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "1236") || strings.Contains(s, "purged") || strings.Contains(s, "Could not find GTID")
}
