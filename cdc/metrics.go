package cdc

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the pipeline's Prometheus series. A nil *Metrics records
// nothing.
type Metrics struct {
	lag       prometheus.Gauge
	rows      *prometheus.CounterVec
	copyRows  *prometheus.CounterVec
	pruneRows *prometheus.CounterVec
}

// NewMetrics registers the CDC series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "banyan_cdc_lag_seconds",
			Help: "Age of the newest source transaction applied to the target (0 when caught up and idle); while the stream cannot run, the time since it was last caught up.",
		}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "banyan_cdc_rows_applied_total",
			Help: "Row changes applied to the target by streaming, by target table and operation.",
		}, []string{"table", "op"}),
		copyRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "banyan_cdc_copy_rows_total",
			Help: "Rows written by the initial copy, by target table.",
		}, []string{"table"}),
		pruneRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "banyan_cdc_resnapshot_deleted_total",
			Help: "Target rows a resnapshot deleted because the source no longer has their key, by target table.",
		}, []string{"table"}),
	}
	reg.MustRegister(m.lag, m.rows, m.copyRows, m.pruneRows)
	return m
}

func (m *Metrics) applied(counts Applied, sourceTS int64) {
	if m == nil {
		return
	}
	for table, ops := range counts {
		for op, n := range ops {
			m.rows.WithLabelValues(table, op.String()).Add(float64(n))
		}
	}
	if sourceTS > 0 {
		m.lag.Set(max(0, time.Since(time.Unix(sourceTS, 0)).Seconds()))
	}
}

// idle updates the lag when nothing is waiting: caught up means 0.
func (m *Metrics) idle(sourceTS int64, caughtUp bool) {
	if m == nil {
		return
	}
	if caughtUp {
		m.lag.Set(0)
	} else if sourceTS > 0 {
		m.lag.Set(max(0, time.Since(time.Unix(sourceTS, 0)).Seconds()))
	}
}

// stalled sets the lag while the stream cannot run: the time since it
// was last known to be caught up.
func (m *Metrics) stalled(fresh time.Time) {
	if m == nil {
		return
	}
	m.lag.Set(max(0, time.Since(fresh).Seconds()))
}

func (m *Metrics) copied(table string, n int) {
	if m == nil || n == 0 {
		return
	}
	m.copyRows.WithLabelValues(table).Add(float64(n))
}

func (m *Metrics) pruned(table string, n int) {
	if m == nil || n == 0 {
		return
	}
	m.pruneRows.WithLabelValues(table).Add(float64(n))
}
