package cdc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	driver "github.com/go-sql-driver/mysql"
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
	Log   *slog.Logger

	host     string
	port     uint16
	user, pw string
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
	return &BinlogSource{Flavor: flavor, ServerID: serverID, UseGTID: useGTID, host: host, port: uint16(port), user: cfg.User, pw: cfg.Passwd, Log: slog.Default()}, nil
}

// Stream sends every committed transaction and DDL after from to out, in
// binlog order, until ctx ends or the connection fails. It returns
// ctx.Err() on cancellation; any other error means the caller should
// resume from its last applied position.
func (s *BinlogSource) Stream(ctx context.Context, from Position, out chan<- Event) error {
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: s.ServerID, Flavor: s.Flavor, Host: s.host, Port: s.port, User: s.user, Password: s.pw,
		Charset: "utf8mb4", UseDecimal: false, ParseTime: false, TimestampStringLocation: time.UTC,
		HeartbeatPeriod: 5 * time.Second, ReadTimeout: 30 * time.Second,
		// Reconnects are ours: we resume from the applied checkpoint.
		DisableRetrySync: true,
		Logger:           slog.New(slog.DiscardHandler),
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
		streamer, err = syncer.StartSync(mysql.Position{Name: from.File, Pos: from.Pos})
	}
	if err != nil {
		return fmt.Errorf("start binlog stream at %s: %w", from, err)
	}

	var tx *Tx
	var pendingGTID string
	commit := func(h *replication.EventHeader) error {
		if pendingGTID != "" && gset != nil {
			if err := gset.Update(pendingGTID); err != nil {
				return fmt.Errorf("gtid %s: %w", pendingGTID, err)
			}
			cur.GTID = gset.String()
		}
		pendingGTID = ""
		cur.Pos = h.LogPos
		return nil
	}
	send := func(e Event) error {
		select {
		case out <- e:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
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
		tx = nil
		return err
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
		case *replication.MariadbGTIDEvent:
			pendingGTID = e.GTID.String()
			tx = &Tx{Timestamp: ev.Header.Timestamp}
		case *replication.GTIDEvent:
			next, err := e.GTIDNext()
			if err != nil {
				return fmt.Errorf("gtid event: %w", err)
			}
			pendingGTID = next.String()
			tx = &Tx{Timestamp: ev.Header.Timestamp}
		case *replication.RowsEvent:
			if tx == nil {
				tx = &Tx{Timestamp: ev.Header.Timestamp}
			}
			schema, table := string(e.Table.Schema), string(e.Table.Table)
			if s.Watch != nil && !s.Watch(schema, table) {
				continue
			}
			if err := appendChanges(tx, e, schema, table); err != nil {
				return err
			}
		case *replication.XIDEvent:
			if err := endTx(ev.Header); err != nil {
				return err
			}
		case *replication.QueryEvent:
			q := strings.TrimSpace(string(e.Query))
			switch strings.ToUpper(q) {
			case "BEGIN":
				if tx == nil {
					tx = &Tx{Timestamp: ev.Header.Timestamp}
				}
				continue
			case "COMMIT": // a transaction on non-transactional tables
				if err := endTx(ev.Header); err != nil {
					return err
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

func appendChanges(tx *Tx, e *replication.RowsEvent, schema, table string) error {
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
	fix := func(row []any) []any {
		for i, v := range row {
			switch {
			case collations[i] == 63: // binary: keep bytes as bytes, never as text
				if s, ok := v.(string); ok {
					row[i] = []byte(s)
				}
			case enums[i] != nil:
				if n, ok := v.(int64); ok && n > 0 && int(n) <= len(enums[i]) {
					row[i] = enums[i][n-1]
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
					row[i] = strings.Join(members, ",")
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
	return nil
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
