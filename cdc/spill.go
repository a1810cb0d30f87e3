package cdc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
)

// A source transaction is applied all at once or not at all, so the stream
// reads the whole of it before the target sees any of it (ADR 0003). Its
// row changes past the first spillRows are kept in a temporary file, not
// in memory: a nightly UPDATE of millions of rows then costs disk, about
// the size of its row images, instead of some 2.5 KB of heap a changed row,
// which ended in an out-of-memory crash at the same place on every restart.
//
// The file is removed from its directory as soon as it is created, so no
// crash leaves it behind; the space comes back when it is closed.

// CheckSpillDir reports why dir (cdc.spill_dir) cannot take spill files:
// it is not there, is no directory, or a file cannot be made in it. ""
// stands for the system's temporary directory. Only `banyan cdc run`
// needs the directory, so it is checked when the pipeline opens, not when
// the config is read (a proxy host sharing the config need not have it).
func CheckSpillDir(dir string) error {
	sp, err := newSpill(dir)
	if err != nil {
		return err
	}
	sp.close()
	return nil
}

// spill holds the first changes of one transaction, encoded in order.
type spill struct {
	f    *os.File
	name string // still to remove when the system kept it at creation
	n    int    // changes written
	size int64  // bytes written
	// cols numbers the column lists written so far: a list is written in
	// full once, then named by its number.
	cols     map[string]int
	lastCols []Column
	lastID   int
	buf      []byte
}

func newSpill(dir string) (*spill, error) {
	f, err := os.CreateTemp(dir, "banyan-cdc-tx-*")
	if err != nil {
		return nil, spillErr(dir, err)
	}
	s := &spill{f: f, cols: map[string]int{}, lastID: -1}
	if err := os.Remove(f.Name()); err != nil {
		s.name = f.Name()
	}
	return s, nil
}

// spillErr says where a transaction could not be written and what to do.
func spillErr(dir string, err error) error {
	if dir == "" {
		dir = os.TempDir()
	}
	return fmt.Errorf("keep a large source transaction's changes in a temporary file in %s: %w (free space there, or point cdc.spill_dir at a disk with room for the largest source transaction, or raise cdc.spill_rows if memory allows)", dir, err)
}

// close releases the file and its space.
func (s *spill) close() {
	s.f.Close()
	if s.name != "" {
		os.Remove(s.name)
	}
}

// write appends changes to the file. The buffer lives only as long as the
// call: a transaction waiting to be applied holds no more than its file.
func (s *spill) write(cs []Change) error {
	w := bufio.NewWriterSize(s.f, 256<<10)
	var head [binary.MaxVarintLen64]byte
	for i := range cs {
		var err error
		if s.buf, err = s.encode(s.buf[:0], &cs[i]); err != nil {
			return &permanentError{err}
		}
		h := binary.AppendUvarint(head[:0], uint64(len(s.buf)))
		w.Write(h) // a failed write is kept by w and returned by Flush
		w.Write(s.buf)
		s.n++
		s.size += int64(len(h) + len(s.buf))
	}
	if err := w.Flush(); err != nil {
		return spillErr(filepath.Dir(s.f.Name()), err)
	}
	return nil
}

// each decodes the changes in order and calls fn with each.
func (s *spill) each(fn func(Change) error) error {
	r := bufio.NewReaderSize(io.NewSectionReader(s.f, 0, s.size), 256<<10)
	var cols [][]Column
	var buf []byte
	for i := 0; i < s.n; i++ {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return fmt.Errorf("read back change %d of a spilled transaction: %w", i, err)
		}
		if uint64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("read back change %d of a spilled transaction: %w", i, err)
		}
		c, err := decodeChange(buf, &cols)
		if err != nil {
			return fmt.Errorf("read back change %d of a spilled transaction: %w", i, err)
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	return nil
}

// Value tags. go-mysql hands row values as these Go types (DECIMAL and
// temporal values as strings: the syncer runs without UseDecimal and
// ParseTime); any other type is refused rather than written wrongly.
const (
	tagNil byte = iota
	tagInt8
	tagInt16
	tagInt32
	tagInt64
	tagInt
	tagUint8
	tagUint16
	tagUint32
	tagUint64
	tagFloat32
	tagFloat64
	tagString
	tagBytes
	tagNilBytes
)

// encode appends c: op, schema, table, the column list (in full the first
// time, then by number) and both images.
func (s *spill) encode(b []byte, c *Change) ([]byte, error) {
	b = append(b, byte(c.Op))
	b = appendString(b, c.Schema)
	b = appendString(b, c.Table)
	full := false
	if s.lastID < 0 || !sameSlice(c.Columns, s.lastCols) {
		key := string(columnsKey(nil, c.Columns))
		id, ok := s.cols[key]
		if !ok {
			id = len(s.cols)
			s.cols[key] = id
		}
		s.lastCols, s.lastID, full = c.Columns, id, !ok
	}
	b = appendBool(b, full)
	b = binary.AppendUvarint(b, uint64(s.lastID))
	if full {
		b = binary.AppendUvarint(b, uint64(len(c.Columns)))
		b = columnsKey(b, c.Columns)
	}
	var err error
	for _, row := range [][]any{c.Before, c.After} {
		if b, err = appendImage(b, row); err != nil {
			return nil, fmt.Errorf("%s.%s: %w", c.Schema, c.Table, err)
		}
	}
	return b, nil
}

func sameSlice(a, b []Column) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// columnsKey appends the column list's names and types.
func columnsKey(b []byte, cols []Column) []byte {
	for _, c := range cols {
		b = appendString(b, c.Name)
		b = append(b, c.Type)
		b = binary.AppendUvarint(b, uint64(c.Meta))
		b = appendBool(b, c.Unsigned)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// appendImage writes a row image; a nil image (no before image of an
// insert) differs from an empty one.
func appendImage(b []byte, row []any) ([]byte, error) {
	if row == nil {
		return append(b, 0), nil
	}
	b = append(b, 1)
	b = binary.AppendUvarint(b, uint64(len(row)))
	for i, v := range row {
		switch x := v.(type) {
		case nil:
			b = append(b, tagNil)
		case int8:
			b = binary.AppendVarint(append(b, tagInt8), int64(x))
		case int16:
			b = binary.AppendVarint(append(b, tagInt16), int64(x))
		case int32:
			b = binary.AppendVarint(append(b, tagInt32), int64(x))
		case int64:
			b = binary.AppendVarint(append(b, tagInt64), x)
		case int:
			b = binary.AppendVarint(append(b, tagInt), int64(x))
		case uint8:
			b = binary.AppendUvarint(append(b, tagUint8), uint64(x))
		case uint16:
			b = binary.AppendUvarint(append(b, tagUint16), uint64(x))
		case uint32:
			b = binary.AppendUvarint(append(b, tagUint32), uint64(x))
		case uint64:
			b = binary.AppendUvarint(append(b, tagUint64), x)
		case float32:
			b = binary.LittleEndian.AppendUint32(append(b, tagFloat32), math.Float32bits(x))
		case float64:
			b = binary.LittleEndian.AppendUint64(append(b, tagFloat64), math.Float64bits(x))
		case string:
			b = appendString(append(b, tagString), x)
		case []byte:
			// A nil []byte goes to the target as NULL, an empty one as
			// '': keep which it was.
			if x == nil {
				b = append(b, tagNilBytes)
				continue
			}
			b = binary.AppendUvarint(append(b, tagBytes), uint64(len(x)))
			b = append(b, x...)
		default:
			return nil, fmt.Errorf("value %d of a row is of Go type %T, which the spill file cannot hold; banyan stops rather than write it wrongly (raise cdc.spill_rows above this transaction's row changes to keep it in memory)", i, v)
		}
	}
	return b, nil
}

// decoder reads what encode wrote.
type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("record cut short")

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.fail(errShort)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// varint reads what binary.AppendVarint wrote: a uvarint of the value
// zig-zag encoded.
func (d *decoder) varint() int64 {
	u := d.uvarint()
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

// take returns the next n bytes, nil when fewer are left.
func (d *decoder) take(n uint64) []byte {
	if d.err != nil || uint64(len(d.b)) < n {
		d.fail(errShort)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// bytes reads a length and that many bytes, as a copy: empty, not nil,
// when the length is 0.
func (d *decoder) bytes() []byte {
	v := d.take(d.uvarint())
	if d.err != nil {
		return nil
	}
	return append(make([]byte, 0, len(v)), v...)
}

func (d *decoder) string() string { return string(d.take(d.uvarint())) }

func (d *decoder) fixed(n int) []byte {
	if v := d.take(uint64(n)); v != nil {
		return v
	}
	return make([]byte, n)
}

func decodeChange(b []byte, cols *[][]Column) (Change, error) {
	d := &decoder{b: b}
	c := Change{Op: Op(d.byte()), Schema: d.string(), Table: d.string()}
	full := d.byte()
	id := d.uvarint()
	if full == 1 {
		n := d.uvarint()
		if d.err == nil && n > uint64(len(d.b)) {
			d.fail(errShort)
		}
		list := make([]Column, 0, min(n, 4096))
		for i := uint64(0); i < n && d.err == nil; i++ {
			list = append(list, Column{Name: d.string(), Type: d.byte(), Meta: uint16(d.uvarint()), Unsigned: d.byte() == 1})
		}
		if d.err == nil && id != uint64(len(*cols)) {
			d.fail(fmt.Errorf("column list %d out of order", id))
		}
		*cols = append(*cols, list)
	}
	if d.err == nil && id >= uint64(len(*cols)) {
		d.fail(fmt.Errorf("unknown column list %d", id))
	}
	if d.err == nil {
		c.Columns = (*cols)[id]
	}
	c.Before = d.image()
	c.After = d.image()
	if d.err == nil && len(d.b) != 0 {
		d.fail(fmt.Errorf("%d bytes left over", len(d.b)))
	}
	return c, d.err
}

func (d *decoder) image() []any {
	if d.byte() == 0 {
		return nil
	}
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail(errShort)
		return nil
	}
	row := make([]any, n)
	for i := range row {
		switch tag := d.byte(); tag {
		case tagNil:
		case tagInt8:
			row[i] = int8(d.varint())
		case tagInt16:
			row[i] = int16(d.varint())
		case tagInt32:
			row[i] = int32(d.varint())
		case tagInt64:
			row[i] = d.varint()
		case tagInt:
			row[i] = int(d.varint())
		case tagUint8:
			row[i] = uint8(d.uvarint())
		case tagUint16:
			row[i] = uint16(d.uvarint())
		case tagUint32:
			row[i] = uint32(d.uvarint())
		case tagUint64:
			row[i] = d.uvarint()
		case tagFloat32:
			row[i] = math.Float32frombits(binary.LittleEndian.Uint32(d.fixed(4)))
		case tagFloat64:
			row[i] = math.Float64frombits(binary.LittleEndian.Uint64(d.fixed(8)))
		case tagString:
			row[i] = d.string()
		case tagBytes:
			row[i] = d.bytes()
		case tagNilBytes:
			row[i] = []byte(nil)
		default:
			d.fail(fmt.Errorf("unknown value tag %d", tag))
		}
		if d.err != nil {
			return nil
		}
	}
	return row
}
