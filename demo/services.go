// Package demo holds the demo estate used by `banyan demo` and the
// end-to-end tests: a ten-year-old shop monolith ("legacy") and the new
// orders service that takes over order reads. Each runs on an in-memory
// store, or on its own MySQL/MariaDB schema: the legacy one with the habits
// of its age (t_order, ord_id, DECIMAL yuan, local-time DATETIMEs, magic
// status numbers) and the new one clean (orders, cents, UTC, an ENUM),
// kept in step by banyan's CDC.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// ServedByHeader names the service that answered, so the demo can show
// where each request went.
const ServedByHeader = "X-Served-By"

// Shanghai is the legacy monolith's local time zone (UTC+8, no DST).
var Shanghai = time.FixedZone("CST", 8*3600)

// Order is one order as both services understand it.
type Order struct {
	ID            int64
	UserID        int64
	SubtotalCents int64
	DiscountPct   int
	Status        string // paid, shipped, cancelled
	CreatedAt     time.Time
}

// LegacyTotalCents is the discounted total the way the monolith has always
// computed it: rounded half up to the fen.
func (o Order) LegacyTotalCents() int64 {
	return (o.SubtotalCents*int64(100-o.DiscountPct) + 50) / 100
}

// newTotalCents is the new service's computation, with the planted bug: it
// truncates instead of rounding, so some discounted totals are one fen
// short. Shadow diffs must catch it as $.total.
func (o Order) newTotalCents() int64 {
	return o.SubtotalCents * int64(100-o.DiscountPct) / 100
}

// Store is where a service keeps orders.
type Store interface {
	Order(ctx context.Context, id int64) (Order, bool, error)
	// Create stores a new order and returns it with its id; only the
	// legacy monolith takes checkouts.
	Create(ctx context.Context, o Order) (Order, error)
}

// ErrReadOnly is returned by stores that do not take writes.
var ErrReadOnly = errors.New("read-only store")

// orderView is an order as the public API shows it.
type orderView struct {
	ID          int64             `json:"id"`
	UserID      int64             `json:"user_id"`
	Subtotal    float64           `json:"subtotal"`
	DiscountPct int               `json:"discount_pct"`
	Total       float64           `json:"total"`
	Status      string            `json:"status"`
	CreatedAt   string            `json:"created_at"`
	Meta        map[string]string `json:"meta"`
}

// view renders o the way service name does. Legacy prints Shanghai time,
// the new service UTC: the same instant, which the diff's timestamp rule
// treats as equal. The request_id differs on every answer: noise.
func (o Order) view(name string) orderView {
	v := orderView{ID: o.ID, UserID: o.UserID, Subtotal: float64(o.SubtotalCents) / 100, DiscountPct: o.DiscountPct, Status: o.Status,
		Meta: map[string]string{"request_id": fmt.Sprintf("%s-%016x", name, rand.Uint64())}}
	if name == "legacy" {
		v.Total = float64(o.LegacyTotalCents()) / 100
		v.CreatedAt = o.CreatedAt.In(Shanghai).Format(time.RFC3339)
	} else {
		v.Total = float64(o.newTotalCents()) / 100
		v.CreatedAt = o.CreatedAt.UTC().Format(time.RFC3339)
	}
	return v
}

// Products is the catalogue the monolith serves.
var Products = []map[string]any{
	{"sku": "TEA-001", "name": "Oolong tea", "price": 12.5},
	{"sku": "CUP-002", "name": "Tea cup", "price": 6},
	{"sku": "POT-003", "name": "Clay teapot", "price": 88.8},
}

// Legacy is the monolith: products, orders and checkout.
func Legacy(store Store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/products", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, "legacy", http.StatusOK, Products)
	})
	mux.HandleFunc("GET /api/orders/{id}", orderHandler(store, "legacy"))
	mux.HandleFunc("POST /api/checkout", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			UserID      int64   `json:"user_id"`
			Subtotal    float64 `json:"subtotal"`
			DiscountPct int     `json:"discount_pct"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil || in.Subtotal <= 0 || in.DiscountPct < 0 || in.DiscountPct > 90 {
			writeJSON(w, "legacy", http.StatusBadRequest, map[string]string{"error": "want {user_id, subtotal > 0, discount_pct 0..90}"})
			return
		}
		o, err := store.Create(r.Context(), Order{UserID: in.UserID, SubtotalCents: int64(in.Subtotal*100 + 0.5), DiscountPct: in.DiscountPct,
			Status: "paid", CreatedAt: time.Now().Truncate(time.Second)})
		if err != nil {
			writeJSON(w, "legacy", http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, "legacy", http.StatusCreated, o.view("legacy"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, "legacy", http.StatusOK, map[string]string{"page": r.URL.Path})
	})
	return mux
}

// OrdersService is the new service that takes over reading orders.
func OrdersService(store Store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/orders/{id}", orderHandler(store, "orders-svc"))
	return mux
}

func orderHandler(store Store, name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			writeJSON(w, name, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("order id %q is not a number", r.PathValue("id"))})
			return
		}
		o, ok, err := store.Order(r.Context(), id)
		switch {
		case err != nil:
			writeJSON(w, name, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		case !ok:
			writeJSON(w, name, http.StatusNotFound, map[string]string{"error": "no such order"})
		default:
			writeJSON(w, name, http.StatusOK, o.view(name))
		}
	}
}

func writeJSON(w http.ResponseWriter, servedBy string, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(ServedByHeader, servedBy)
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
