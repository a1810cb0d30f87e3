package xds

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"net"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/banyanhq/banyan/routes"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startXDS runs a Server for the manager's table on a loopback listener.
func startXDS(tb testing.TB, m *routes.Manager, opts ServerOptions, setup ...func(*Server)) (*Server, string, *syncBuffer) {
	tb.Helper()
	logs := &syncBuffer{}
	opts.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv := NewServer(opts)
	for _, f := range setup {
		f(srv)
	}
	m.Subscribe(func(t *routes.Table) {
		if err := srv.Publish(t); err != nil {
			opts.Log.Error("publish", "err", err)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Serve: %v", err)
		}
	})
	return srv, ln.Addr().String(), logs
}

// adsClient is a bare ADS client, the way Envoy talks to banyan.
type adsClient struct {
	tb     testing.TB
	node   *corev3.Node
	stream discoverygrpc.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	resps  chan *discoverygrpc.DiscoveryResponse
	first  bool
}

func dialADS(tb testing.TB, addr string, node *corev3.Node) *adsClient {
	tb.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(func() { cancel(); conn.Close() })
	st, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	c := &adsClient{tb: tb, node: node, stream: st, resps: make(chan *discoverygrpc.DiscoveryResponse, 16), first: true}
	go func() {
		for {
			r, err := st.Recv()
			if err != nil {
				close(c.resps)
				return
			}
			c.resps <- r
		}
	}()
	return c
}

func (c *adsClient) send(req *discoverygrpc.DiscoveryRequest) {
	c.tb.Helper()
	if c.first {
		req.Node, c.first = c.node, false // like Envoy: the node on the first message only
	}
	if err := c.stream.Send(req); err != nil {
		c.tb.Fatalf("send: %v", err)
	}
}

// subscribe asks for a type and returns the response.
func (c *adsClient) subscribe(typeURL string, names ...string) *discoverygrpc.DiscoveryResponse {
	c.tb.Helper()
	c.send(&discoverygrpc.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names})
	return c.recv(typeURL)
}

func (c *adsClient) recv(typeURL string) *discoverygrpc.DiscoveryResponse {
	c.tb.Helper()
	select {
	case r, ok := <-c.resps:
		if !ok {
			c.tb.Fatalf("stream closed while waiting for %s", shortType(typeURL))
		}
		if r.GetTypeUrl() != typeURL {
			c.tb.Fatalf("got a %s response, want %s", shortType(r.GetTypeUrl()), shortType(typeURL))
		}
		return r
	case <-time.After(5 * time.Second):
		c.tb.Fatalf("no %s response within 5s", shortType(typeURL))
	}
	return nil
}

// ack accepts a response as Envoy does; names re-subscribes to them.
func (c *adsClient) ack(r *discoverygrpc.DiscoveryResponse, names ...string) {
	c.tb.Helper()
	c.send(&discoverygrpc.DiscoveryRequest{TypeUrl: r.GetTypeUrl(), VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce(), ResourceNames: names})
}

// nack rejects a response, keeping kept as the accepted version.
func (c *adsClient) nack(r *discoverygrpc.DiscoveryResponse, kept, msg string, names ...string) {
	c.tb.Helper()
	c.send(&discoverygrpc.DiscoveryRequest{
		TypeUrl: r.GetTypeUrl(), VersionInfo: kept, ResponseNonce: r.GetNonce(), ResourceNames: names,
		ErrorDetail: &status.Status{Code: 3, Message: msg},
	})
}

// weights reads the weighted clusters of the named Envoy route.
func weights(tb testing.TB, r *discoverygrpc.DiscoveryResponse, route string) map[string]uint32 {
	tb.Helper()
	if len(r.GetResources()) != 1 {
		tb.Fatalf("route response has %d resources, want 1", len(r.GetResources()))
	}
	var rc routev3.RouteConfiguration
	if err := r.GetResources()[0].UnmarshalTo(&rc); err != nil {
		tb.Fatal(err)
	}
	for _, rt := range rc.GetVirtualHosts()[0].GetRoutes() {
		if rt.GetName() != route {
			continue
		}
		w := map[string]uint32{}
		if c := rt.GetRoute().GetCluster(); c != "" {
			w[c] = 100
		}
		for _, cw := range rt.GetRoute().GetWeightedClusters().GetClusters() {
			w[cw.GetName()] = cw.GetWeight().GetValue()
		}
		return w
	}
	tb.Fatalf("no route %q in the route configuration", route)
	return nil
}

const serverConfig = `
backends:
  legacy: {url: http://127.0.0.1:8081}
  new:    {url: http://127.0.0.1:8082}
routes:
  - name: orders
    match: {path_prefix: /api/orders}
    split: {legacy: 80, new: 20}
    sticky: {cookie: uid}
`

func statusOf(tb testing.TB, srv *Server) Status {
	tb.Helper()
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/xds", nil))
	if rec.Code != 200 {
		tb.Fatalf("GET /api/xds = %d", rec.Code)
	}
	var st Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		tb.Fatal(err)
	}
	return st
}

// nodeStatus returns the first /api/xds entry of node id, if there is one.
func nodeStatus(tb testing.TB, srv *Server, id string) (NodeStatus, bool) {
	tb.Helper()
	for _, n := range statusOf(tb, srv).Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return NodeStatus{}, false
}

// connectAndLeave connects node, subscribes it to clusters and closes its
// stream, then waits until /api/xds shows it disconnected.
func connectAndLeave(tb testing.TB, srv *Server, addr string, node *corev3.Node) {
	tb.Helper()
	c := dialADS(tb, addr, node)
	c.subscribe(resourcev3.ClusterType)
	if err := c.stream.CloseSend(); err != nil {
		tb.Fatal(err)
	}
	eventually(tb, node.GetId()+" to disconnect", func() bool {
		n, ok := nodeStatus(tb, srv, node.GetId())
		return ok && !n.Connected
	})
}

// eventually polls cond for up to five seconds.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	tb.Fatalf("timed out waiting for %s", what)
}

func TestServer_ADS(t *testing.T) {
	m, _ := newManager(t, serverConfig)
	srv, addr, logs := startXDS(t, m, ServerOptions{})
	reg := prometheus.NewRegistry()
	if err := srv.Register(reg); err != nil {
		t.Fatal(err)
	}
	v1 := "1"
	if got := srv.Status().Version; got != v1 {
		t.Fatalf("published version = %q, want %q (the table's history seq)", got, v1)
	}

	envoy := dialADS(t, addr, &corev3.Node{Id: "envoy-1", Cluster: "edge"})
	// Envoy's ADS order: clusters, then listeners, then the routes they name.
	cds := envoy.subscribe(resourcev3.ClusterType)
	if got := cds.GetVersionInfo(); got != v1 {
		t.Errorf("cluster version = %q, want %q", got, v1)
	}
	var names []string
	for _, a := range cds.GetResources() {
		var c clusterv3.Cluster
		if err := a.UnmarshalTo(&c); err != nil {
			t.Fatal(err)
		}
		names = append(names, c.GetName())
	}
	slices.Sort(names) // the cache answers in map order
	if got, want := strings.Join(names, ","), "legacy,new"; got != want {
		t.Errorf("clusters = %s, want %s", got, want)
	}
	envoy.ack(cds)
	lds := envoy.subscribe(resourcev3.ListenerType)
	if len(lds.GetResources()) != 1 {
		t.Errorf("listeners = %d, want 1", len(lds.GetResources()))
	}
	envoy.ack(lds)
	rds := envoy.subscribe(resourcev3.RouteType, RouteConfigName)
	if got := weights(t, rds, "orders"); got["legacy"] != 80 || got["new"] != 20 {
		t.Errorf("weights = %v, want legacy 80 new 20", got)
	}
	envoy.ack(rds, RouteConfigName)

	eventually(t, "envoy-1 to have acknowledged version 1", func() bool {
		n := statusOf(t, srv).Nodes
		return len(n) == 1 && n[0].AckedVersion == v1 && len(n[0].Types) == 3
	})

	// A weight edit publishes a new snapshot with the new history seq.
	e, err := m.SetSplit(context.Background(), "orders", routes.Split{"legacy": 50, "new": 50}, "test", "ramp")
	if err != nil {
		t.Fatal(err)
	}
	v2 := "2"
	if got := e.Seq; got != 2 {
		t.Fatalf("edit seq = %d, want 2", got)
	}
	got := map[string]*discoverygrpc.DiscoveryResponse{}
	for range 3 {
		select {
		case r := <-envoy.resps:
			got[r.GetTypeUrl()] = r
		case <-time.After(5 * time.Second):
			t.Fatalf("after the edit got %d of 3 responses", len(got))
		}
	}
	rds2 := got[resourcev3.RouteType]
	if rds2 == nil {
		t.Fatal("no route response after the weight edit")
	}
	if got := rds2.GetVersionInfo(); got != v2 {
		t.Errorf("route version after edit = %q, want %q", got, v2)
	}
	if w := weights(t, rds2, "orders"); w["legacy"] != 50 || w["new"] != 50 {
		t.Errorf("weights after edit = %v, want 50/50", w)
	}
	envoy.ack(got[resourcev3.ClusterType])
	envoy.ack(got[resourcev3.ListenerType])
	// Envoy rejects the new routes: it keeps version 1 for them.
	envoy.nack(rds2, v1, "route orders: unknown cluster", RouteConfigName)

	eventually(t, "the NACK to be reported", func() bool {
		n := statusOf(t, srv).Nodes
		return len(n) == 1 && n[0].LastNACK != nil
	})
	n := statusOf(t, srv).Nodes[0]
	if got, want := *n.LastNACK, (NACK{Type: "route", Version: v2, Error: "route orders: unknown cluster", At: n.LastNACK.At}); got != want {
		t.Errorf("last NACK = %+v, want %+v", got, want)
	}
	if got := n.AckedVersion; got != v1 {
		t.Errorf("acked version = %q, want %q: routes are still at version 1", got, v1)
	}
	if rt := n.Types["route"]; rt == nil || !rt.NACKed || rt.SentVersion != v2 || rt.AckedVersion != v1 {
		t.Errorf("route status = %+v, want sent 2, acked 1, nacked", rt)
	}
	if c := n.Types["cluster"]; c == nil || c.AckedVersion != v2 {
		t.Errorf("cluster status = %+v, want acked 2", c)
	}
	if !strings.Contains(logs.String(), "xds NACK") || !strings.Contains(logs.String(), "node=envoy-1") || !strings.Contains(logs.String(), "unknown cluster") {
		t.Errorf("NACK not logged with its node and error:\n%s", logs)
	}
	wantMetrics := `
# HELP banyan_xds_node_nacked 1 while an Envoy node's last response of this type was rejected (NACK).
# TYPE banyan_xds_node_nacked gauge
banyan_xds_node_nacked{cluster="edge",node="envoy-1",type="cluster"} 0
banyan_xds_node_nacked{cluster="edge",node="envoy-1",type="listener"} 0
banyan_xds_node_nacked{cluster="edge",node="envoy-1",type="route"} 1
# HELP banyan_xds_node_nacks_total Responses an Envoy node rejected (NACK).
# TYPE banyan_xds_node_nacks_total counter
banyan_xds_node_nacks_total{cluster="edge",node="envoy-1"} 1
# HELP banyan_xds_node_acked_version Route table version an Envoy node last acknowledged, per resource type.
# TYPE banyan_xds_node_acked_version gauge
banyan_xds_node_acked_version{cluster="edge",node="envoy-1",type="cluster"} 2
banyan_xds_node_acked_version{cluster="edge",node="envoy-1",type="listener"} 2
banyan_xds_node_acked_version{cluster="edge",node="envoy-1",type="route"} 1
# HELP banyan_xds_published_version Route table version of the published xDS snapshot.
# TYPE banyan_xds_published_version gauge
banyan_xds_published_version 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(wantMetrics), "banyan_xds_node_nacked", "banyan_xds_node_nacks_total", "banyan_xds_node_acked_version", "banyan_xds_published_version"); err != nil {
		t.Error(err)
	}

	// A later ACK of the routes clears the NACK flag.
	envoy.ack(rds2, RouteConfigName)
	eventually(t, "the node to acknowledge version 2 everywhere", func() bool {
		n := statusOf(t, srv).Nodes[0]
		return n.AckedVersion == v2 && !n.Types["route"].NACKed && n.NACKs == 1
	})
}

func TestServer_NodeGroups(t *testing.T) {
	for _, group := range []string{GroupByCluster, GroupByID} {
		t.Run(group, func(t *testing.T) {
			m, _ := newManager(t, serverConfig)
			srv, addr, _ := startXDS(t, m, ServerOptions{NodeGroup: group})
			// Nodes that connect after the publish get the current snapshot.
			a := dialADS(t, addr, &corev3.Node{Id: "a", Cluster: "edge"})
			b := dialADS(t, addr, &corev3.Node{Id: "b", Cluster: "edge"})
			c := dialADS(t, addr, &corev3.Node{Id: "c", Cluster: "internal"})
			for _, n := range []*adsClient{a, b, c} {
				if r := n.subscribe(resourcev3.ClusterType); r.GetVersionInfo() != "1" {
					t.Errorf("node %s: version %q, want 1", n.node.GetId(), r.GetVersionInfo())
				}
			}
			want := map[string]int{GroupByCluster: 2, GroupByID: 3}[group]
			if got := len(srv.cache.GetStatusKeys()); got != want {
				t.Errorf("snapshot cache keys = %d (%v), want %d", got, srv.cache.GetStatusKeys(), want)
			}
			for _, n := range statusOf(t, srv).Nodes {
				wantGroup := "cluster/" + n.Cluster
				if group == GroupByID {
					wantGroup = "id/" + n.ID
				}
				if n.Group != wantGroup {
					t.Errorf("node %s group = %q, want %q", n.ID, n.Group, wantGroup)
				}
			}
		})
	}
}

func TestServer_PublishKeepsLastGood(t *testing.T) {
	m, cfg := newManager(t, serverConfig)
	srv, addr, logs := startXDS(t, m, ServerOptions{})
	envoy := dialADS(t, addr, &corev3.Node{Id: "envoy-1", Cluster: "edge"})
	envoy.ack(envoy.subscribe(resourcev3.ClusterType))

	// Shadowing without a comparator address cannot be translated.
	bad := *cfg
	bad.Routes = append([]routes.RouteConfig(nil), cfg.Routes...)
	bad.Routes[0].Shadow.Percent = 10
	bad.Routes[0].Split = map[string]int{"legacy": 70, "new": 30}
	if err := m.Reload(context.Background(), &bad, "test"); err != nil {
		t.Fatal(err)
	}
	st := srv.Status()
	if st.Version != "1" {
		t.Errorf("version after a refused publish = %q, want 1 (the last good)", st.Version)
	}
	if !strings.Contains(st.LastPublishError, "route orders") || st.PublishFailures != 1 {
		t.Errorf("status = %+v, want the refused publish naming route orders", st)
	}
	if !strings.Contains(logs.String(), "no comparator address") {
		t.Errorf("refused publish not logged:\n%s", logs)
	}
	select {
	case r := <-envoy.resps:
		t.Errorf("Envoy got version %q after a refused publish", r.GetVersionInfo())
	case <-time.After(200 * time.Millisecond):
	}

	// Without the shadow the same split publishes; it is history seq 2.
	fixed := bad
	fixed.Routes = append([]routes.RouteConfig(nil), bad.Routes...)
	fixed.Routes[0].Shadow.Percent = 0
	if err := m.Reload(context.Background(), &fixed, "test"); err != nil {
		t.Fatal(err)
	}
	if got, want := srv.Status().Version, "2"; got != want {
		t.Errorf("version = %q, want %q", got, want)
	}
	if r := envoy.recv(resourcev3.ClusterType); r.GetVersionInfo() != "2" {
		t.Errorf("Envoy got version %q, want 2", r.GetVersionInfo())
	} else {
		envoy.ack(r)
	}

	// A reload that changes the resources but not the history (here a
	// backend address) still reaches Envoy, as SEQ.N.
	moved := fixed
	moved.Backends = map[string]routes.BackendConfig{"legacy": cfg.Backends["legacy"], "new": {URL: "http://127.0.0.1:9999", Timeout: time.Second, Host: "preserve"}}
	if err := m.Reload(context.Background(), &moved, "test"); err != nil {
		t.Fatal(err)
	}
	if got, want := srv.Status().Version, "2.1"; got != want {
		t.Errorf("version = %q, want %q", got, want)
	}
	if r := envoy.recv(resourcev3.ClusterType); r.GetVersionInfo() != "2.1" {
		t.Errorf("Envoy got version %q, want 2.1", r.GetVersionInfo())
	}
}

// TestServer_ForgetsGoneNodeGroups: with node_group id every Envoy pod is
// a group of its own. The groups of pods gone for longer than forgetAfter
// are dropped with their snapshots (they were kept, and updated on every
// publish, for as long as banyan ran); a connected node's group is kept
// however long it has been quiet, and still gets the next publish.
func TestServer_ForgetsGoneNodeGroups(t *testing.T) {
	m, _ := newManager(t, serverConfig)
	var skew atomic.Int64
	srv, addr, _ := startXDS(t, m, ServerOptions{NodeGroup: GroupByID}, func(s *Server) {
		s.now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	stays := dialADS(t, addr, &corev3.Node{Id: "stays", Cluster: "edge"})
	stays.ack(stays.subscribe(resourcev3.ClusterType))
	closeOne := func(id string) { connectAndLeave(t, srv, addr, &corev3.Node{Id: id, Cluster: "edge"}) }
	hasSnapshot := func(id string) bool {
		_, err := srv.cache.GetSnapshot("id/" + id)
		return err == nil
	}
	for _, id := range []string{"pod-1", "pod-2"} {
		closeOne(id)
	}
	if !hasSnapshot("pod-1") || !hasSnapshot("pod-2") {
		t.Fatal("a group was dropped at once: a pod that reconnects soon keeps its group")
	}
	skew.Store(int64(2 * forgetAfter))
	closeOne("pod-3") // a stream that ends looks for groups to drop
	eventually(t, "the gone pods' groups to be dropped", func() bool { return !hasSnapshot("pod-1") && !hasSnapshot("pod-2") })
	srv.pubMu.Lock()
	groups := slices.Sorted(maps.Keys(srv.groups))
	srv.pubMu.Unlock()
	if got, want := strings.Join(groups, ","), "id/pod-3,id/stays"; got != want {
		t.Errorf("node groups = %s, want %s", got, want)
	}
	if !hasSnapshot("stays") || !hasSnapshot("pod-3") {
		t.Error("the connected node's group, or the group seen just now, was dropped")
	}
	if _, err := m.SetSplit(context.Background(), "orders", routes.Split{"legacy": 50, "new": 50}, "test", "ramp"); err != nil {
		t.Fatal(err)
	}
	if r := stays.recv(resourcev3.ClusterType); r.GetVersionInfo() != "2" {
		t.Errorf("connected node got version %q after the edit, want 2", r.GetVersionInfo())
	}
}

// TestServer_KeepsGroupOfNodeBackInAnotherCluster: a node that reconnects
// soon after under another cluster (same node id, new --service-cluster)
// is in its new group, and that group is kept while it stays connected,
// however quiet it is, and gets the next publish. The group a node is in
// was read from its status entry, made when the node first connected, so
// the new group counted as unused and was dropped with the connected
// node's watches.
func TestServer_KeepsGroupOfNodeBackInAnotherCluster(t *testing.T) {
	m, _ := newManager(t, serverConfig)
	var skew atomic.Int64
	srv, addr, _ := startXDS(t, m, ServerOptions{NodeGroup: GroupByCluster}, func(s *Server) {
		s.now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	connectAndLeave(t, srv, addr, &corev3.Node{Id: "envoy-1", Cluster: "blue"})

	back := dialADS(t, addr, &corev3.Node{Id: "envoy-1", Cluster: "green"})
	back.ack(back.subscribe(resourcev3.ClusterType))
	eventually(t, "envoy-1's ACK to be read", func() bool {
		n, ok := nodeStatus(t, srv, "envoy-1")
		return ok && n.AckedVersion == "1"
	})
	// /api/xds shows where the node is now.
	for _, n := range statusOf(t, srv).Nodes {
		if n.ID == "envoy-1" && (n.Cluster != "green" || n.Group != "cluster/green") {
			t.Errorf("envoy-1 back under green: status cluster %q group %q, want green and cluster/green", n.Cluster, n.Group)
		}
	}

	skew.Store(int64(2 * forgetAfter))
	connectAndLeave(t, srv, addr, &corev3.Node{Id: "envoy-2", Cluster: "blue"}) // a stream that ends looks for groups to drop

	if _, err := srv.cache.GetSnapshot("cluster/green"); err != nil {
		t.Errorf("the group of connected node envoy-1 (cluster green) was dropped: %v", err)
	}
	if _, err := m.SetSplit(context.Background(), "orders", routes.Split{"legacy": 50, "new": 50}, "test", "ramp"); err != nil {
		t.Fatal(err)
	}
	if r := back.recv(resourcev3.ClusterType); r.GetVersionInfo() != "2" {
		t.Errorf("connected node got version %q after the edit, want 2", r.GetVersionInfo())
	}
}
