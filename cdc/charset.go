package cdc

import (
	"context"
	"database/sql"
	"fmt"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/encoding/unicode/utf32"
)

// The binlog carries text in its column's character set, where the copy
// reads it over SQL already converted to utf8mb4. A legacy table in latin1
// (MySQL's default before 8.0) or gbk streamed as raw bytes would be
// refused by a strict target or stored garbled; these decoders convert
// each column as the server does.

// charsetDecoders maps a MySQL character set to its decoder; nil means the
// bytes are already UTF-8.
var charsetDecoders = map[string]encoding.Encoding{
	"utf8mb4": nil, "utf8mb3": nil, "utf8": nil, "ascii": nil,
	"latin1":  charmap.Windows1252, // MySQL's latin1 is cp1252
	"latin2":  charmap.ISO8859_2,
	"cp1250":  charmap.Windows1250,
	"cp1251":  charmap.Windows1251,
	"cp1256":  charmap.Windows1256,
	"cp1257":  charmap.Windows1257,
	"greek":   charmap.ISO8859_7,
	"hebrew":  charmap.ISO8859_8,
	"latin5":  charmap.ISO8859_9,
	"latin7":  charmap.ISO8859_13,
	"koi8r":   charmap.KOI8R,
	"koi8u":   charmap.KOI8U,
	"cp866":   charmap.CodePage866,
	"gbk":     simplifiedchinese.GBK,
	"gb2312":  simplifiedchinese.GBK, // a subset of gbk
	"gb18030": simplifiedchinese.GB18030,
	"big5":    traditionalchinese.Big5,
	"sjis":    japanese.ShiftJIS,
	"cp932":   japanese.ShiftJIS,
	"ujis":    japanese.EUCJP,
	"eucjpms": japanese.EUCJP,
	"euckr":   korean.EUCKR,
	"ucs2":    unicode.UTF16(unicode.BigEndian, unicode.IgnoreBOM),
	"utf16":   unicode.UTF16(unicode.BigEndian, unicode.IgnoreBOM),
	"utf16le": unicode.UTF16(unicode.LittleEndian, unicode.IgnoreBOM),
	"utf32":   utf32.UTF32(utf32.BigEndian, utf32.IgnoreBOM),
}

// loadCharsets reads which character set each collation id belongs to.
func loadCharsets(ctx context.Context, db *sql.DB) (map[uint64]string, error) {
	out := map[uint64]string{}
	// MariaDB 10.10+ lists its newer collations (utf8mb4_uca1400_...) only
	// in COLLATION_CHARACTER_SET_APPLICABILITY, with an ID; older servers
	// and MySQL have no such column, so that query may fail.
	for _, q := range []string{
		`SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS WHERE ID IS NOT NULL`,
		`SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATION_CHARACTER_SET_APPLICABILITY WHERE ID IS NOT NULL`,
	} {
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			if len(out) > 0 {
				continue
			}
			return nil, fmt.Errorf("read the source's collations: %w", err)
		}
		for rows.Next() {
			var id uint64
			var cs string
			if err := rows.Scan(&id, &cs); err != nil {
				rows.Close()
				return nil, err
			}
			out[id] = cs
		}
		rows.Close()
	}
	return out, nil
}

// textDecoder returns how to turn a column's binlog bytes into UTF-8: nil
// when they are UTF-8 already, an error for a character set banyan cannot
// convert.
func textDecoder(charsets map[uint64]string, collation uint64) (*encoding.Decoder, error) {
	cs, ok := charsets[collation]
	if !ok {
		return nil, fmt.Errorf("collation id %d is unknown to the source's information_schema", collation)
	}
	enc, ok := charsetDecoders[cs]
	if !ok {
		return nil, fmt.Errorf("character set %s cannot be converted to UTF-8 by banyan", cs)
	}
	if enc == nil {
		return nil, nil
	}
	return enc.NewDecoder(), nil
}

// loadNonTransactional lists the source's tables whose engine has no
// transactions (MyISAM, Aria, MEMORY...), as "db.table": what a rolled-back
// transaction wrote to them persisted.
func loadNonTransactional(ctx context.Context, db *sql.DB) (map[string]bool, error) {
	rows, err := db.QueryContext(ctx, `SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES
		WHERE TABLE_TYPE = 'BASE TABLE' AND ENGINE IS NOT NULL AND ENGINE NOT IN ('InnoDB', 'XtraDB', 'RocksDB', 'TokuDB')
		AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')`)
	if err != nil {
		return nil, fmt.Errorf("read the source's table engines: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var schema, table string
		if err := rows.Scan(&schema, &table); err != nil {
			return nil, err
		}
		out[schema+"."+table] = true
	}
	return out, rows.Err()
}
