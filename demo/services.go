// Package demo holds the demo estate used by `banyan demo` and the
// end-to-end tests: a legacy shop monolith and a new orders service.
// Both keep their data in memory.
package demo

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// ServedByHeader names the service that answered, so the demo can show
// where each request went.
const ServedByHeader = "X-Served-By"

// Order is one order as the shop keeps it.
type Order struct {
	ID          int64
	UserID      int64
	Subtotal    float64 // yuan
	DiscountPct int
	Status      string
	CreatedAt   time.Time
}

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

// shanghai is the legacy monolith's local time zone (UTC+8, no DST).
var shanghai = time.FixedZone("CST", 8*3600)

// view renders o the way service name does. The legacy monolith rounds the
// discounted total half-up and prints local time; the new service prints
// UTC (the same instant) and carries the planted bug: it truncates the
// discounted total instead of rounding it, so some totals are one fen short.
func (o Order) view(name string) orderView {
	cents := o.Subtotal * 100 * float64(100-o.DiscountPct) / 100
	v := orderView{ID: o.ID, UserID: o.UserID, Subtotal: o.Subtotal, DiscountPct: o.DiscountPct, Status: o.Status,
		Meta: map[string]string{"request_id": fmt.Sprintf("%s-%016x", name, rand.Uint64())}}
	if name == "legacy" {
		v.Total = math.Round(cents) / 100
		v.CreatedAt = o.CreatedAt.In(shanghai).Format(time.RFC3339)
	} else {
		v.Total = math.Floor(cents) / 100
		v.CreatedAt = o.CreatedAt.UTC().Format(time.RFC3339)
	}
	return v
}

// Shop is the in-memory data both demo services read.
type Shop struct {
	mu     sync.RWMutex
	orders map[int64]Order
	nextID int64
}

// NewShop returns a shop seeded with n orders.
func NewShop(n int) *Shop {
	s := &Shop{orders: map[int64]Order{}}
	base := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	for i := 1; i <= n; i++ {
		discount := 0
		if i%4 == 0 {
			discount = 15
		}
		s.put(Order{UserID: int64(1000 + i%97), Subtotal: float64(1000+i*37%9000) / 100, DiscountPct: discount, Status: "paid", CreatedAt: base.Add(time.Duration(i) * time.Minute)})
	}
	return s
}

func (s *Shop) put(o Order) Order {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	o.ID = s.nextID
	s.orders[o.ID] = o
	return o
}

func (s *Shop) get(id int64) (Order, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	o, ok := s.orders[id]
	return o, ok
}

// Legacy is the monolith: products, orders and checkout.
func Legacy(shop *Shop) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/products", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, "legacy", http.StatusOK, []map[string]any{
			{"sku": "TEA-001", "name": "Oolong tea", "price": 12.5},
			{"sku": "CUP-002", "name": "Tea cup", "price": 6},
		})
	})
	mux.HandleFunc("GET /api/orders/{id}", orderHandler(shop, "legacy"))
	mux.HandleFunc("POST /api/checkout", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			UserID   int64   `json:"user_id"`
			Subtotal float64 `json:"subtotal"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			writeJSON(w, "legacy", http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		o := shop.put(Order{UserID: in.UserID, Subtotal: in.Subtotal, Status: "paid", CreatedAt: time.Now()})
		writeJSON(w, "legacy", http.StatusCreated, o.view("legacy"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, "legacy", http.StatusOK, map[string]string{"page": r.URL.Path})
	})
	return mux
}

// OrdersService is the new service that takes over reading orders.
func OrdersService(shop *Shop) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/orders/{id}", orderHandler(shop, "orders-svc"))
	return mux
}

func orderHandler(shop *Shop, name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			writeJSON(w, name, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("order id %q is not a number", r.PathValue("id"))})
			return
		}
		o, ok := shop.get(id)
		if !ok {
			writeJSON(w, name, http.StatusNotFound, map[string]string{"error": "no such order"})
			return
		}
		writeJSON(w, name, http.StatusOK, o.view(name))
	}
}

func writeJSON(w http.ResponseWriter, servedBy string, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(ServedByHeader, servedBy)
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
