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
	spillTxs  prometheus.Counter
	spillSize prometheus.Counter
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
		spillTxs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "banyan_cdc_spilled_transactions_total",
			Help: "Source transactions applied whose row changes outgrew cdc.spill_rows and were partly kept in a temporary file.",
		}),
		spillSize: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "banyan_cdc_spilled_bytes_total",
			Help: "Bytes those transactions wrote to their temporary files.",
		}),
	}
	reg.MustRegister(m.lag, m.rows, m.copyRows, m.pruneRows, m.spillTxs, m.spillSize)
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

// spilled counts an applied transaction that had a spill file of size
// bytes (none when 0).
func (m *Metrics) spilled(size int64) {
	if m == nil || size == 0 {
		return
	}
	m.spillTxs.Inc()
	m.spillSize.Add(float64(size))
}
