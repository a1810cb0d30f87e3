package xds

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	cplog "github.com/envoyproxy/go-control-plane/pkg/log"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/banyanhq/banyan/routes"
)

// Node grouping modes: nodes of one group share one snapshot.
const (
	GroupByCluster = "cluster"
	GroupByID      = "id"
)

// ServerOptions configure a Server.
type ServerOptions struct {
	Options
	// NodeGroup is GroupByCluster (default) or GroupByID.
	NodeGroup string
	// Log receives publishes, ACKs and NACKs (slog.Default when nil).
	Log *slog.Logger
}

// ServerOptionsFrom reads ServerOptions from the config's xds section.
func ServerOptionsFrom(c routes.XDSConfig, log *slog.Logger) ServerOptions {
	return ServerOptions{Options: OptionsFrom(c), NodeGroup: c.NodeGroup, Log: log}
}

// Server serves the route table to Envoy over ADS from a go-control-plane
// snapshot cache and tracks, per node, which version each resource type
// has acknowledged and the last rejection. It is safe for concurrent use.
type Server struct {
	opts  ServerOptions
	log   *slog.Logger
	cache cachev3.SnapshotCache
	xds   serverv3.Server

	// ctx ends every ADS stream when the server stops.
	ctx    context.Context
	cancel context.CancelFunc

	// pubMu serialises publishing and the seeding of new node groups.
	pubMu sync.Mutex
	snap  *cachev3.Snapshot // last good snapshot, nil before the first
	res   Resources         // what snap holds
	seq   int64             // table version of snap
	rev   int               // republishes of seq with other content
	// groups are the node groups that have the snapshot, with when a
	// request from one of their nodes was last seen.
	groups map[string]time.Time

	mu       sync.Mutex // guards the status below
	version  string
	pubAt    time.Time
	pubErr   string
	pubFails int
	streams  map[streamKey]*stream
	nodes    map[string]*nodeState

	grpcMu sync.Mutex
	grpc   *grpc.Server

	now func() time.Time // time.Now; tests move it on
}

// streamKey names an ADS stream. go-control-plane numbers state-of-the-
// world and delta (incremental) streams separately, so both can have id 1.
type streamKey struct {
	delta bool
	id    int64
}

// stream is one ADS stream's node and what was last sent on it per type.
type stream struct {
	node *corev3.Node
	sent map[string][]sent // by type URL, the newest last, at most keepSent
}

type sent struct{ nonce, version string }

// keepSent is how many responses per type a stream remembers, so that an
// ACK or NACK of a response that a newer one has overtaken still names
// its version.
const keepSent = 8

// versionOf returns the version of the response with nonce, if remembered.
func (st *stream) versionOf(typeURL, nonce string) (string, bool) {
	for _, sn := range st.sent[typeURL] {
		if sn.nonce == nonce {
			return sn.version, true
		}
	}
	return "", false
}

func (st *stream) remember(typeURL, nonce, version string) {
	l := append(st.sent[typeURL], sent{nonce: nonce, version: version})
	if len(l) > keepSent {
		l = slices.Delete(l, 0, len(l)-keepSent)
	}
	st.sent[typeURL] = l
}

type nodeState struct {
	NodeStatus
	streams int
	types   map[string]*TypeStatus
}

// NewServer returns a server with an empty snapshot cache. Publish the
// first table before Envoy connects, or nodes wait until it is published.
func NewServer(opts ServerOptions) *Server {
	if opts.NodeGroup == "" {
		opts.NodeGroup = GroupByCluster
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	s := &Server{
		opts:    opts,
		log:     opts.Log,
		groups:  map[string]time.Time{},
		streams: map[streamKey]*stream{},
		nodes:   map[string]*nodeState{},
		now:     time.Now,
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.cache = cachev3.NewSnapshotCache(true, nodeHash(s.group), cplog.LoggerFuncs{
		DebugFunc: func(f string, a ...any) { s.log.Debug("xds cache: " + fmt.Sprintf(f, a...)) },
		InfoFunc:  func(f string, a ...any) { s.log.Debug("xds cache: " + fmt.Sprintf(f, a...)) },
		WarnFunc:  func(f string, a ...any) { s.log.Warn("xds cache: " + fmt.Sprintf(f, a...)) },
		ErrorFunc: func(f string, a ...any) { s.log.Error("xds cache: " + fmt.Sprintf(f, a...)) },
	})
	// Envoy speaks either ADS flavour (api_type GRPC or DELTA_GRPC); both
	// seed the node's group and are tracked the same way.
	s.xds = serverv3.NewServer(s.ctx, s.cache, serverv3.CallbackFuncs{
		StreamRequestFunc:       s.onRequest,
		StreamResponseFunc:      s.onResponse,
		StreamClosedFunc:        func(id int64, _ *corev3.Node) { s.closed(streamKey{id: id}) },
		StreamDeltaRequestFunc:  s.onDeltaRequest,
		StreamDeltaResponseFunc: s.onDeltaResponse,
		DeltaStreamClosedFunc:   func(id int64, _ *corev3.Node) { s.closed(streamKey{delta: true, id: id}) },
	})
	return s
}

// nodeHash adapts a func to go-control-plane's NodeHash.
type nodeHash func(*corev3.Node) string

func (h nodeHash) ID(n *corev3.Node) string { return h(n) }

// group is the snapshot key of a node.
func (s *Server) group(n *corev3.Node) string {
	if s.opts.NodeGroup == GroupByID {
		return "id/" + n.GetId()
	}
	return "cluster/" + n.GetCluster()
}

// Publish translates t and, when the resources validate, makes them the
// snapshot of every node group, with the table's version (its history
// sequence number). When a config reload changes the resources without a
// new history entry, the version is "SEQ.N" so Envoy still sees a change.
// On error nothing changes: Envoy keeps the last good snapshot. Publish is
// quick enough to run in a routes.Manager subscriber.
func (s *Server) Publish(t *routes.Table) error {
	res, err := Translate(t, s.opts.Options)
	if err != nil {
		return s.publishFailed(t.Version(), err)
	}
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	version := strconv.FormatInt(t.Version(), 10)
	rev := 0
	if s.snap != nil && t.Version() == s.seq {
		if res.equal(s.res) {
			return nil
		}
		rev = s.rev + 1
		version += "." + strconv.Itoa(rev)
	}
	snap, err := cachev3.NewSnapshot(version, map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType:  asResources(res.Clusters),
		resourcev3.RouteType:    asResources(res.Routes),
		resourcev3.ListenerType: asResources(res.Listeners),
	})
	if err == nil {
		err = snap.Consistent()
	}
	if err != nil {
		return s.publishFailed(t.Version(), fmt.Errorf("%w: %w", ErrInvalidResources, err))
	}
	for g := range s.groups {
		if err := s.cache.SetSnapshot(s.ctx, g, snap); err != nil {
			return s.publishFailed(t.Version(), fmt.Errorf("set snapshot for node group %s: %w", g, err))
		}
	}
	s.snap, s.res, s.seq, s.rev = snap, res, t.Version(), rev
	s.mu.Lock()
	s.version, s.pubAt, s.pubErr = version, s.now(), ""
	s.mu.Unlock()
	s.log.Info("xds snapshot published", "version", version, "node_groups", len(s.groups),
		"listeners", len(res.Listeners), "routes", len(res.Routes[0].GetVirtualHosts()[0].GetRoutes()), "clusters", len(res.Clusters))
	return nil
}

func (s *Server) publishFailed(seq int64, err error) error {
	s.mu.Lock()
	s.pubErr = err.Error()
	s.pubFails++
	last := s.version
	s.mu.Unlock()
	return fmt.Errorf("publish xds snapshot for route table version %d (Envoy keeps version %q): %w", seq, last, err)
}

func asResources[M types.Resource](ms []M) []types.Resource {
	out := make([]types.Resource, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}

// seed gives a node group seen for the first time the current snapshot,
// before its first watch is created, and notes that the group is in use.
func (s *Server) seed(group string) {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	_, known := s.groups[group]
	s.groups[group] = s.now()
	if known {
		return
	}
	if s.snap != nil {
		if err := s.cache.SetSnapshot(s.ctx, group, s.snap); err != nil {
			s.log.Error("xds: seeding node group", "group", group, "err", err)
		}
	}
}

// onRequest records a state-of-the-world request: one that answers a
// response (response_nonce set) acknowledges its version_info, or rejects
// the response when error_detail is set.
func (s *Server) onRequest(id int64, req *discoverygrpc.DiscoveryRequest) error {
	return s.observe(streamKey{id: id}, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetVersionInfo(), req.GetErrorDetail())
}

// onDeltaRequest records a delta (incremental) request. Only the first one
// of a stream must carry the node, and an ACK carries no version: it
// acknowledges the response with its nonce, whose system_version_info the
// stream remembers.
func (s *Server) onDeltaRequest(id int64, req *discoverygrpc.DeltaDiscoveryRequest) error {
	return s.observe(streamKey{delta: true, id: id}, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), "", req.GetErrorDetail())
}

// observe records the stream's node, seeds its node group with the
// snapshot before the first watch is created, and reads ACKs and NACKs.
// version is what the request says the node runs ("" for delta).
func (s *Server) observe(key streamKey, n *corev3.Node, typeURL, nonce, version string, errDetail *status.Status) error {
	s.mu.Lock()
	if st := s.streams[key]; st != nil && n == nil {
		n = st.node
	}
	s.mu.Unlock()
	if n == nil {
		return errors.New("xds: the first request of a stream must carry the node")
	}
	s.seed(s.group(n))
	typ := shortType(typeURL)
	now := s.now()

	s.mu.Lock()
	st := s.streams[key]
	if st == nil {
		st = &stream{node: n, sent: map[string][]sent{}}
		s.streams[key] = st
		ns := s.nodes[n.GetId()]
		if ns == nil {
			ns = &nodeState{NodeStatus: NodeStatus{ID: n.GetId()}, types: map[string]*TypeStatus{}}
			s.nodes[n.GetId()] = ns
		}
		ns.streams++
		ns.Connected = true
		ns.ConnectedAt = now
		// Set on every connect: a node id back under another cluster
		// shows where it is now.
		ns.Cluster, ns.Group = n.GetCluster(), s.group(n)
		s.log.Info("xds node connected", "node", n.GetId(), "cluster", n.GetCluster(), "stream", key.id, "delta", key.delta)
	}
	ns := s.nodes[st.node.GetId()]
	ns.LastSeen = now
	ts := ns.types[typ]
	if ts == nil {
		ts = &TypeStatus{}
		ns.types[typ] = ts
	}
	var logNACK, logACK bool
	var rejected string
	if nonce != "" {
		sentVersion, known := st.versionOf(typeURL, nonce)
		if key.delta {
			version = ts.AckedVersion // a delta request does not say what it runs
		}
		if errDetail != nil {
			rejected = "unknown"
			if known {
				rejected = sentVersion
			}
			ns.NACKs++
			ns.LastNACK = &NACK{Type: typ, Version: rejected, Error: errDetail.GetMessage(), At: now}
			ts.NACKed = true
			logNACK = true
		} else {
			if key.delta {
				version = sentVersion
			}
			if known || !key.delta {
				logACK = ts.AckedVersion != version || ts.NACKed
				ts.AckedVersion, ts.AckedAt, ts.NACKed = version, now, false
			}
		}
	}
	s.mu.Unlock()

	switch {
	case logNACK:
		s.log.Warn("xds NACK: Envoy rejected the resources and keeps its previous version",
			"node", n.GetId(), "cluster", n.GetCluster(), "type", typ, "rejected_version", rejected,
			"kept_version", version, "error", errDetail.GetMessage())
	case logACK:
		s.log.Info("xds ACK", "node", n.GetId(), "cluster", n.GetCluster(), "type", typ, "version", version)
	}
	return nil
}

func (s *Server) onResponse(_ context.Context, id int64, _ *discoverygrpc.DiscoveryRequest, resp *discoverygrpc.DiscoveryResponse) {
	s.sent(streamKey{id: id}, resp.GetTypeUrl(), resp.GetNonce(), resp.GetVersionInfo())
}

func (s *Server) onDeltaResponse(id int64, _ *discoverygrpc.DeltaDiscoveryRequest, resp *discoverygrpc.DeltaDiscoveryResponse) {
	s.sent(streamKey{delta: true, id: id}, resp.GetTypeUrl(), resp.GetNonce(), resp.GetSystemVersionInfo())
}

// sent records a response sent on a stream.
func (s *Server) sent(key streamKey, typeURL, nonce, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[key]
	if st == nil {
		return
	}
	st.remember(typeURL, nonce, version)
	if ns := s.nodes[st.node.GetId()]; ns != nil {
		typ := shortType(typeURL)
		if ns.types[typ] == nil {
			ns.types[typ] = &TypeStatus{}
		}
		ns.types[typ].SentVersion = version
	}
}

// forgetAfter is how long a disconnected node stays in the status.
const forgetAfter = time.Hour

func (s *Server) closed(key streamKey) {
	s.forget(key)
	s.pruneGroups()
}

// forget drops a closed stream, and the nodes disconnected for longer
// than forgetAfter.
func (s *Server) forget(key streamKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[key]
	delete(s.streams, key)
	if st == nil {
		return
	}
	now := s.now()
	if ns := s.nodes[st.node.GetId()]; ns != nil {
		ns.streams--
		if ns.streams <= 0 {
			ns.Connected = false
			ns.LastSeen = now
		}
	}
	for k, ns := range s.nodes {
		if !ns.Connected && now.Sub(ns.LastSeen) > forgetAfter {
			delete(s.nodes, k)
		}
	}
	s.log.Info("xds stream closed", "node", st.node.GetId(), "cluster", st.node.GetCluster(), "stream", key.id, "delta", key.delta)
}

// pruneGroups drops the node groups that no connected node is in and that
// no request has come from for longer than forgetAfter, with their
// snapshots: with node_group id, every Envoy pod ever started made a group
// that each publish went on updating, for as long as banyan ran. A group
// seen lately is kept even without a connected node, so a stream that has
// just seeded its group (and is not counted as connected yet) is never
// left without a snapshot.
func (s *Server) pruneGroups() {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	s.mu.Lock()
	// A group is in use while a stream of one of its nodes is open. The
	// group comes from the stream's node, not the node's status entry,
	// which keeps the cluster the node first connected with.
	inUse := map[string]bool{}
	for _, st := range s.streams {
		inUse[s.group(st.node)] = true
	}
	cutoff := s.now().Add(-forgetAfter)
	s.mu.Unlock()
	for g, seen := range s.groups {
		if !inUse[g] && seen.Before(cutoff) {
			delete(s.groups, g)
			s.cache.ClearSnapshot(g)
		}
	}
}

// shortType names a resource type URL for logs, status and metrics.
func shortType(url string) string {
	switch url {
	case resourcev3.ListenerType:
		return "listener"
	case resourcev3.RouteType:
		return "route"
	case resourcev3.ClusterType:
		return "cluster"
	case resourcev3.EndpointType:
		return "endpoint"
	}
	return url
}

// Status is what GET /api/xds answers.
type Status struct {
	// Version is the published snapshot's version ("" before the first).
	Version     string    `json:"version"`
	PublishedAt time.Time `json:"published_at,omitzero"`
	// LastPublishError is the last refused publish since the last good one.
	LastPublishError string       `json:"last_publish_error,omitempty"`
	PublishFailures  int          `json:"publish_failures"`
	NodeGroup        string       `json:"node_group"`
	Nodes            []NodeStatus `json:"nodes"`
}

// NodeStatus is one Envoy node as the server sees it.
type NodeStatus struct {
	ID      string `json:"id"`
	Cluster string `json:"cluster"`
	Group   string `json:"group"`
	// AckedVersion is the lowest version the node has acknowledged over
	// the resource types it subscribes to: it runs at least this version
	// everywhere. "" until every type has acknowledged one.
	AckedVersion string                 `json:"acked_version"`
	Types        map[string]*TypeStatus `json:"types"`
	Connected    bool                   `json:"connected"`
	ConnectedAt  time.Time              `json:"connected_at,omitzero"`
	LastSeen     time.Time              `json:"last_seen,omitzero"`
	NACKs        int                    `json:"nacks"`
	LastNACK     *NACK                  `json:"last_nack,omitempty"`
}

// TypeStatus is one resource type of one node.
type TypeStatus struct {
	SentVersion  string    `json:"sent_version"`
	AckedVersion string    `json:"acked_version"`
	AckedAt      time.Time `json:"acked_at,omitzero"`
	// NACKed is true while the last response of this type was rejected.
	NACKed bool `json:"nacked"`
}

// NACK is a rejected response.
type NACK struct {
	Type    string    `json:"type"`
	Version string    `json:"version"`
	Error   string    `json:"error"`
	At      time.Time `json:"at"`
}

// Status returns the published version and every known node, by id.
func (s *Server) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Version: s.version, PublishedAt: s.pubAt, LastPublishError: s.pubErr, PublishFailures: s.pubFails, NodeGroup: s.opts.NodeGroup, Nodes: []NodeStatus{}}
	for _, ns := range s.nodes {
		n := ns.NodeStatus
		n.Types = make(map[string]*TypeStatus, len(ns.types))
		for k, v := range ns.types {
			c := *v
			n.Types[k] = &c
		}
		if ns.LastNACK != nil {
			c := *ns.LastNACK
			n.LastNACK = &c
		}
		n.AckedVersion = lowestAcked(ns.types)
		st.Nodes = append(st.Nodes, n)
	}
	slices.SortFunc(st.Nodes, func(a, b NodeStatus) int { return cmp.Compare(a.ID, b.ID) })
	return st
}

func lowestAcked(ts map[string]*TypeStatus) string {
	low := ""
	for _, t := range ts {
		if t.AckedVersion == "" {
			return ""
		}
		if low == "" || versionLess(t.AckedVersion, low) {
			low = t.AckedVersion
		}
	}
	return low
}

// versionLess orders "SEQ" and "SEQ.N" versions.
func versionLess(a, b string) bool {
	as, ar := parseVersion(a)
	bs, br := parseVersion(b)
	if as != bs {
		return as < bs
	}
	return ar < br
}

func parseVersion(v string) (seq, rev int64) {
	s, r, _ := strings.Cut(v, ".")
	seq, _ = strconv.ParseInt(s, 10, 64)
	rev, _ = strconv.ParseInt(r, 10, 64)
	return seq, rev
}

// Handler answers GET with the Status as JSON. Mount it behind the admin
// token.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "use GET", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s.Status())
	})
}

// Serve serves ADS on ln until ctx ends or Stop is called.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	g := grpc.NewServer(
		grpc.MaxConcurrentStreams(1_000_000),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 5 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 15 * time.Second, PermitWithoutStream: true}),
	)
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, s.xds)
	s.grpcMu.Lock()
	if s.ctx.Err() != nil {
		s.grpcMu.Unlock()
		return errors.New("xds server is stopped")
	}
	s.grpc = g
	s.grpcMu.Unlock()
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(ln) }()
	select {
	case <-ctx.Done():
		s.Stop()
		<-errc
		return nil
	case err := <-errc:
		if errors.Is(err, grpc.ErrServerStopped) {
			return nil
		}
		return fmt.Errorf("xds listener: %w", err)
	}
}

// Stop ends every ADS stream and the gRPC server. It waits up to five
// seconds for handlers to return.
func (s *Server) Stop() {
	s.cancel()
	s.grpcMu.Lock()
	g := s.grpc
	s.grpcMu.Unlock()
	if g == nil {
		return
	}
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		g.Stop()
		<-done
	}
}

// Register adds the server's metrics to reg:
// banyan_xds_published_version, banyan_xds_publish_failures_total,
// banyan_xds_node_acked_version{node,cluster,type},
// banyan_xds_node_nacked{node,cluster,type} and
// banyan_xds_node_nacks_total{node,cluster}.
func (s *Server) Register(reg prometheus.Registerer) error {
	return reg.Register(collector{s})
}

var (
	descPublished = prometheus.NewDesc("banyan_xds_published_version",
		"Route table version of the published xDS snapshot.", nil, nil)
	descPubFails = prometheus.NewDesc("banyan_xds_publish_failures_total",
		"Route tables that were not published because their Envoy resources were invalid.", nil, nil)
	descAcked = prometheus.NewDesc("banyan_xds_node_acked_version",
		"Route table version an Envoy node last acknowledged, per resource type.", []string{"node", "cluster", "type"}, nil)
	descNACKed = prometheus.NewDesc("banyan_xds_node_nacked",
		"1 while an Envoy node's last response of this type was rejected (NACK).", []string{"node", "cluster", "type"}, nil)
	descNACKs = prometheus.NewDesc("banyan_xds_node_nacks_total",
		"Responses an Envoy node rejected (NACK).", []string{"node", "cluster"}, nil)
	descConnected = prometheus.NewDesc("banyan_xds_connected_nodes",
		"Envoy nodes with an open ADS stream.", nil, nil)
)

// collector reads the status at scrape time, so a forgotten node leaves
// no stale series.
type collector struct{ s *Server }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPublished, descPubFails, descAcked, descNACKed, descNACKs, descConnected} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Status()
	seq, _ := parseVersion(st.Version)
	ch <- prometheus.MustNewConstMetric(descPublished, prometheus.GaugeValue, float64(seq))
	ch <- prometheus.MustNewConstMetric(descPubFails, prometheus.CounterValue, float64(st.PublishFailures))
	connected := 0
	for _, n := range st.Nodes {
		if n.Connected {
			connected++
		} else {
			continue
		}
		for typ, ts := range n.Types {
			if ts.AckedVersion != "" {
				v, _ := parseVersion(ts.AckedVersion)
				ch <- prometheus.MustNewConstMetric(descAcked, prometheus.GaugeValue, float64(v), n.ID, n.Cluster, typ)
			}
			nacked := 0.0
			if ts.NACKed {
				nacked = 1
			}
			ch <- prometheus.MustNewConstMetric(descNACKed, prometheus.GaugeValue, nacked, n.ID, n.Cluster, typ)
		}
		ch <- prometheus.MustNewConstMetric(descNACKs, prometheus.CounterValue, float64(n.NACKs), n.ID, n.Cluster)
	}
	ch <- prometheus.MustNewConstMetric(descConnected, prometheus.GaugeValue, float64(connected))
}
