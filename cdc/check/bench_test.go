package check

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"hash"
	"hash/fnv"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/banyanhq/banyan/cdc"
	"github.com/banyanhq/banyan/internal/testdb"
	"github.com/banyanhq/banyan/routes"
	"github.com/go-sql-driver/mysql"
)

// The chunk-digest benchmarks compare ways of hashing one side of a table
// chunk by chunk (docs/adr/0004-consistency-check.md):
//
//	go test -run '^$' -bench . -benchtime 3x ./cdc/check/
//
// Each iteration is one pass over the whole table (benchRows rows, 8
// columns); the figure that matters is rows/s.
const (
	benchRows  = 200_000
	benchChunk = 1000
)

const benchDDL = `CREATE TABLE bench (
	id INT PRIMARY KEY,
	user_id INT NOT NULL,
	name VARCHAR(64) NOT NULL,
	email VARCHAR(128) NULL,
	amount DECIMAL(12,2) NOT NULL,
	created DATETIME(6) NOT NULL,
	status CHAR(8) NOT NULL,
	note TEXT NULL
) DEFAULT CHARSET=utf8mb4`

// benchFill generates the rows in the server (Sequence engine), the same
// on both sides.
const benchFill = `INSERT INTO bench
	SELECT seq, seq %% 1000, CONCAT('user ', seq), IF(seq %% 7 = 0, NULL, CONCAT('u', seq, '@example.com')),
	       seq * 0.37, TIMESTAMP('2026-01-01') + INTERVAL seq SECOND + INTERVAL (seq * 7919) %% 1000000 MICROSECOND,
	       ELT(1 + seq %% 3, 'new', 'paid', 'shipped'), IF(seq %% 5 = 0, NULL, REPEAT('lorem ipsum ', 1 + seq %% 8))
	FROM seq_1_to_%d`

// benchCols are the bench table's columns, in order.
var benchCols = []string{"id", "user_id", "name", "email", "amount", "created", "status", "note"}

type benchFixture struct {
	src, dst     *sql.DB
	srcDB, dstDB string
	err          error
}

var (
	fixtureOnce sync.Once
	fixture     benchFixture
)

// benchTables creates the bench table on both servers once per process;
// its databases live as long as the servers.
func benchTables(b *testing.B) *benchFixture {
	b.Helper()
	p := testdb.Need(b, pair)
	fixtureOnce.Do(func() {
		ctx := context.Background()
		f := &fixture
		f.srcDB, f.dstDB = "bench_src", "bench_dst"
		for _, s := range []struct {
			srv *testdb.Server
			db  string
			out **sql.DB
		}{{p.Source, f.srcDB, &f.src}, {p.Target, f.dstDB, &f.dst}} {
			if f.err = s.srv.Exec(ctx, "CREATE DATABASE "+s.db, "USE "+s.db, benchDDL, fmt.Sprintf(benchFill, benchRows)); f.err != nil {
				return
			}
			if *s.out, f.err = cdc.OpenDB(plainDSN(s.srv.DSN(s.db))); f.err != nil {
				return
			}
		}
	})
	if fixture.err != nil {
		b.Fatal(fixture.err)
	}
	return &fixture
}

// plainDSN drops testdb's parseTime, as a user's DSN usually does.
func plainDSN(dsn string) string {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		panic(err)
	}
	cfg.ParseTime = false
	return cfg.FormatDSN()
}

func reportRows(b *testing.B, rows int64) {
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// benchChecker is a Checker on the identical bench tables.
func benchChecker(b *testing.B, f *benchFixture) (*Checker, *table) {
	b.Helper()
	ctx := context.Background()
	sdb := &cdc.SourceDB{DB: f.src, Flavor: "mariadb"}
	maps, err := sdb.Maps(ctx, []routes.TableMapping{{Source: f.srcDB + ".bench", Target: f.dstDB + ".bench"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	c := &Checker{Source: sdb, Target: f.dst, Maps: maps, Opts: Options{ChunkSize: benchChunk}}
	t, err := c.describe(ctx, maps[0])
	if err != nil {
		b.Fatal(err)
	}
	return c, t
}

// BenchmarkChunkDigest hashes the source side of the bench table chunk by
// chunk, each way.
func BenchmarkChunkDigest(b *testing.B) {
	f := benchTables(b)
	c, t := benchChecker(b, f)
	ctx := context.Background()

	// Streamed: keyset chunks read into Go, mapped and normalised, then
	// hashed in key order. go/sha256 is what banyan does.
	stream := func(newHash func() hash.Hash) func(b *testing.B) {
		return func(b *testing.B) {
			var rows int64
			for b.Loop() {
				var last []any
				for {
					raw, err := c.Source.Chunk(ctx, t.m, last, benchChunk)
					if err != nil {
						b.Fatal(err)
					}
					norm, err := normalizeAll(raw, t.fromSource)
					if err != nil {
						b.Fatal(err)
					}
					if newHash == nil {
						digest(norm)
					} else {
						hashRows(norm, newHash())
					}
					rows += int64(len(raw))
					if len(raw) < benchChunk {
						break
					}
					last = keyOf(t.m, raw[len(raw)-1])
				}
			}
			if rows != int64(b.N)*benchRows {
				b.Fatalf("hashed %d rows, want %d", rows, int64(b.N)*benchRows)
			}
			reportRows(b, rows)
		}
	}
	b.Run("go_sha256", stream(nil))
	b.Run("go_fnv64", stream(func() hash.Hash { return fnv.New64a() }))
	b.Run("go_maphash", stream(func() hash.Hash { var h maphash.Hash; return &h }))
	b.Run("go_nohash", stream(func() hash.Hash { return discardHash{} }))

	// In SQL: the server hashes each chunk; Go reads one row per chunk.
	// Chunks are the same key ranges (a boundary query per chunk, as
	// pt-table-checksum's nibbling does).
	isnull := make([]string, 0, len(benchCols))
	for _, c := range benchCols {
		isnull = append(isnull, "ISNULL("+c+")")
	}
	concat := fmt.Sprintf("CONCAT_WS('#', %s, CONCAT(%s))", strings.Join(benchCols, ", "), strings.Join(isnull, ", "))
	inSQL := func(agg string, setup ...string) func(b *testing.B) {
		return func(b *testing.B) {
			conn, err := f.src.Conn(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			for _, s := range setup {
				if _, err := conn.ExecContext(ctx, s); err != nil {
					b.Fatal(err)
				}
			}
			var rows int64
			for b.Loop() {
				lo := 0
				for {
					var hi sql.NullInt64
					err := conn.QueryRowContext(ctx, "SELECT id FROM bench WHERE id > ? ORDER BY id LIMIT 1 OFFSET ?", lo, benchChunk-1).Scan(&hi)
					if err != nil && err != sql.ErrNoRows {
						b.Fatal(err)
					}
					q, args := "SELECT COUNT(*), "+agg+" FROM bench WHERE id > ?", []any{lo}
					if hi.Valid {
						q, args = q+" AND id <= ?", append(args, hi.Int64)
					}
					var n int64
					var sum []byte
					if err := conn.QueryRowContext(ctx, q, args...).Scan(&n, &sum); err != nil {
						b.Fatal(err)
					}
					rows += n
					if !hi.Valid {
						break
					}
					lo = int(hi.Int64)
				}
			}
			if rows != int64(b.N)*benchRows {
				b.Fatalf("hashed %d rows, want %d", rows, int64(b.N)*benchRows)
			}
			reportRows(b, rows)
		}
	}
	// pt-table-checksum's chunk checksum: XOR of per-row CRC32.
	b.Run("sql_crc32_bitxor", inSQL("COALESCE(LOWER(CONV(BIT_XOR(CAST(CRC32("+concat+") AS UNSIGNED)), 10, 16)), 0)"))
	// An ordered digest in SQL: SHA-256 over the chunk's rows in key order.
	b.Run("sql_sha2_group_concat", inSQL("SHA2(GROUP_CONCAT("+concat+" ORDER BY id SEPARATOR '|'), 256)",
		"SET SESSION group_concat_max_len = 1073741824"))
}

// BenchmarkChecker_Run runs a whole check of the identical bench tables
// (both sides read, normalised and hashed; no difference): rows compared
// per second.
func BenchmarkChecker_Run(b *testing.B) {
	f := benchTables(b)
	c, _ := benchChecker(b, f)
	var rows int64
	for b.Loop() {
		res, err := c.Run(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if !res.Consistent || res.Tables[0].Rows != benchRows {
			b.Fatalf("check of identical tables: %+v", res.Tables[0])
		}
		rows += res.Tables[0].Rows
	}
	reportRows(b, rows)
}

// hashRows is digest with another hash function: the same canonical,
// length-prefixed rows in key order.
func hashRows(rows []nrow, h hash.Hash) []byte {
	sorted := slices.Clone(rows)
	slices.SortFunc(sorted, func(a, b nrow) int { return strings.Compare(a.key, b.key) })
	var buf bytes.Buffer
	for _, r := range sorted {
		buf.Reset()
		encodeRow(&buf, r.vals)
		h.Write(buf.Bytes())
	}
	return h.Sum(nil)
}

// discardHash measures streaming and normalising without hashing.
type discardHash struct{}

func (discardHash) Write(p []byte) (int, error) { return len(p), nil }
func (discardHash) Sum(b []byte) []byte         { return b }
func (discardHash) Reset()                      {}
func (discardHash) Size() int                   { return 0 }
func (discardHash) BlockSize() int              { return 1 }

var _ hash.Hash = discardHash{}
