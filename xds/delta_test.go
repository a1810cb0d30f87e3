package xds

import (
	"context"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/banyanhq/banyan/routes"
)

// TestServer_DeltaADS: an Envoy configured with api_type DELTA_GRPC (the
// incremental protocol many fleets use) gets the clusters and later weight
// edits, and shows up in the status like a state-of-the-world node.
func TestServer_DeltaADS(t *testing.T) {
	m, _ := newManager(t, serverConfig)
	srv, addr, _ := startXDS(t, m, ServerOptions{})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); conn.Close() })
	st, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	resps := make(chan *discoverygrpc.DeltaDiscoveryResponse, 16)
	go func() {
		defer close(resps)
		for {
			r, err := st.Recv()
			if err != nil {
				return
			}
			resps <- r
		}
	}()
	recv := func(what string) *discoverygrpc.DeltaDiscoveryResponse {
		t.Helper()
		select {
		case r, ok := <-resps:
			if !ok {
				t.Fatalf("delta stream closed while waiting for %s", what)
			}
			return r
		case <-time.After(3 * time.Second):
			t.Fatalf("no delta response for %s within 3s", what)
		}
		return nil
	}
	node := &corev3.Node{Id: "envoy-delta", Cluster: "edge"}
	if err := st.Send(&discoverygrpc.DeltaDiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	r := recv("the clusters")
	if got := len(r.GetResources()); got != 2 {
		t.Fatalf("delta cluster response has %d resources, want 2 (legacy, new)", got)
	}
	if err := st.Send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: r.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the delta node's ACK of version 1 in /api/xds", func() bool {
		n := statusOf(t, srv).Nodes
		return len(n) == 1 && n[0].ID == "envoy-delta" && n[0].Connected && n[0].AckedVersion == "1"
	})

	// A backend move reaches the delta node too.
	cfg := *m.Config()
	cfg.Backends = map[string]routes.BackendConfig{"legacy": cfg.Backends["legacy"], "new": {URL: "http://127.0.0.1:9999", Timeout: time.Second, Host: "preserve"}}
	if err := m.Reload(context.Background(), &cfg, "test"); err != nil {
		t.Fatal(err)
	}
	r = recv("the moved backend")
	if got := len(r.GetResources()); got != 1 || r.GetResources()[0].GetName() != "new" {
		t.Errorf("delta update after moving backend new: %d resources %v, want only cluster new", got, r.GetResources())
	}
}
