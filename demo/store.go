package demo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Shop is the in-memory store: both services read it, the monolith writes
// it, so the HTTP half of the demo needs no database.
type Shop struct {
	mu     sync.RWMutex
	orders map[int64]Order
	nextID int64
}

var _ Store = (*Shop)(nil)

// NewShop returns a shop seeded with n orders.
func NewShop(n int) *Shop {
	s := &Shop{orders: map[int64]Order{}}
	for _, o := range SeedOrders(n) {
		s.Create(context.Background(), o)
	}
	return s
}

// SeedOrders are the demo's first n orders: every fourth one discounted
// 15 %, which is where legacy rounding and the new service's truncation
// part ways.
func SeedOrders(n int) []Order {
	base := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	out := make([]Order, n)
	for i := 1; i <= n; i++ {
		d := 0
		if i%4 == 0 {
			d = 15
		}
		statuses := []string{"paid", "paid", "shipped", "cancelled"}
		out[i-1] = Order{UserID: int64(1000 + i%97), SubtotalCents: int64(1000 + i*37%9000), DiscountPct: d,
			Status: statuses[i%len(statuses)], CreatedAt: base.Add(time.Duration(i) * time.Minute)}
	}
	return out
}

// Order implements Store.
func (s *Shop) Order(_ context.Context, id int64) (Order, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	o, ok := s.orders[id]
	return o, ok, nil
}

// Create implements Store.
func (s *Shop) Create(_ context.Context, o Order) (Order, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	o.ID = s.nextID
	s.orders[o.ID] = o
	return o, nil
}

// LegacySchema is the monolith's table, with the habits of its age: ord_id
// and usr_id, money as DECIMAL yuan (subtotal and the discounted total it
// stored), local-time DATETIME, status as a magic number (1 paid,
// 2 shipped, 9 cancelled) and a free-text memo nobody reads.
const LegacySchema = `CREATE TABLE t_order (
	ord_id  INT AUTO_INCREMENT PRIMARY KEY,
	usr_id  INT NOT NULL,
	amt     DECIMAL(10,2) NOT NULL,
	disc    TINYINT NOT NULL DEFAULT 0,
	pay_amt DECIMAL(10,2) NOT NULL,
	created DATETIME NOT NULL,
	status  TINYINT NOT NULL,
	memo    VARCHAR(200) NULL
) DEFAULT CHARSET=utf8mb4`

// NewSchema is the new orders service's table.
const NewSchema = `CREATE TABLE orders (
	id             BIGINT PRIMARY KEY,
	user_id        BIGINT NOT NULL,
	subtotal_cents BIGINT NOT NULL,
	discount_pct   INT NOT NULL,
	created_at     DATETIME NOT NULL,
	status         ENUM('paid','shipped','cancelled') NOT NULL
) DEFAULT CHARSET=utf8mb4`

// StatusCodes are the legacy magic numbers, as a CDC enum converter.
const StatusCodes = "enum:1=paid,2=shipped,9=cancelled"

var legacyCode = map[string]int{"paid": 1, "shipped": 2, "cancelled": 9}

// LegacyDB is the monolith's MySQL store.
type LegacyDB struct{ DB *sql.DB }

var _ Store = LegacyDB{}

// Order implements Store.
func (l LegacyDB) Order(ctx context.Context, id int64) (Order, bool, error) {
	var o Order
	var amt float64
	var created string
	var code int
	err := l.DB.QueryRowContext(ctx, `SELECT ord_id, usr_id, amt, disc, created, status FROM t_order WHERE ord_id = ?`, id).
		Scan(&o.ID, &o.UserID, &amt, &o.DiscountPct, &created, &code)
	if errors.Is(err, sql.ErrNoRows) {
		return o, false, nil
	}
	if err != nil {
		return o, false, fmt.Errorf("legacy order %d: %w", id, err)
	}
	o.SubtotalCents = int64(amt*100 + 0.5)
	if o.CreatedAt, err = time.ParseInLocation("2006-01-02 15:04:05", created, Shanghai); err != nil {
		return o, false, fmt.Errorf("legacy order %d: created %q: %w", id, created, err)
	}
	for name, c := range legacyCode {
		if c == code {
			o.Status = name
		}
	}
	return o, true, nil
}

// Create implements Store: the monolith stores the discounted total it
// computed, in yuan, and the time in Shanghai.
func (l LegacyDB) Create(ctx context.Context, o Order) (Order, error) {
	res, err := l.DB.ExecContext(ctx, `INSERT INTO t_order (usr_id, amt, disc, pay_amt, created, status, memo) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		o.UserID, cents(o.SubtotalCents), o.DiscountPct, cents(o.LegacyTotalCents()), o.CreatedAt.In(Shanghai).Format("2006-01-02 15:04:05"), legacyCode[o.Status], "web")
	if err != nil {
		return o, fmt.Errorf("legacy checkout: %w", err)
	}
	o.ID, err = res.LastInsertId()
	return o, err
}

// Seed inserts orders in one statement.
func (l LegacyDB) Seed(ctx context.Context, orders []Order) error {
	if len(orders) == 0 {
		return nil
	}
	var b strings.Builder
	args := make([]any, 0, len(orders)*6)
	b.WriteString("INSERT INTO t_order (usr_id, amt, disc, pay_amt, created, status) VALUES ")
	for i, o := range orders {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?)")
		args = append(args, o.UserID, cents(o.SubtotalCents), o.DiscountPct, cents(o.LegacyTotalCents()), o.CreatedAt.In(Shanghai).Format("2006-01-02 15:04:05"), legacyCode[o.Status])
	}
	_, err := l.DB.ExecContext(ctx, b.String(), args...)
	return err
}

func cents(c int64) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }

// OrdersDB is the new service's MySQL store: it reads what CDC copies.
type OrdersDB struct{ DB *sql.DB }

var _ Store = OrdersDB{}

// Order implements Store.
func (n OrdersDB) Order(ctx context.Context, id int64) (Order, bool, error) {
	var o Order
	var created string
	err := n.DB.QueryRowContext(ctx, `SELECT id, user_id, subtotal_cents, discount_pct, created_at, status FROM orders WHERE id = ?`, id).
		Scan(&o.ID, &o.UserID, &o.SubtotalCents, &o.DiscountPct, &created, &o.Status)
	if errors.Is(err, sql.ErrNoRows) {
		return o, false, nil
	}
	if err != nil {
		return o, false, fmt.Errorf("order %d: %w", id, err)
	}
	if o.CreatedAt, err = time.ParseInLocation("2006-01-02 15:04:05", created, time.UTC); err != nil {
		return o, false, fmt.Errorf("order %d: created_at %q: %w", id, created, err)
	}
	return o, true, nil
}

// Create implements Store: the new service does not take checkouts yet.
func (OrdersDB) Create(context.Context, Order) (Order, error) { return Order{}, ErrReadOnly }
