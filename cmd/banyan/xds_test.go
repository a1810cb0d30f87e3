package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/banyanhq/banyan/xds"
)

func xdsConfigYAML(a, b string) string {
	return configYAML(a, b, 80, 20) + "xds: {listen: 127.0.0.1:0, node_group: id}\n"
}

// recvRoutes waits for a route configuration response on an ADS stream.
func recvRoutes(tb testing.TB, st discoverygrpc.AggregatedDiscoveryService_StreamAggregatedResourcesClient) (*discoverygrpc.DiscoveryResponse, map[string]uint32) {
	tb.Helper()
	type result struct {
		r   *discoverygrpc.DiscoveryResponse
		err error
	}
	ch := make(chan result, 1)
	go func() { r, err := st.Recv(); ch <- result{r, err} }()
	var res result
	select {
	case res = <-ch:
	case <-time.After(5 * time.Second):
		tb.Fatal("no route response from banyan's ADS within 5s")
	}
	if res.err != nil {
		tb.Fatalf("ADS stream: %v", res.err)
	}
	var rc routev3.RouteConfiguration
	if err := res.r.GetResources()[0].UnmarshalTo(&rc); err != nil {
		tb.Fatal(err)
	}
	w := map[string]uint32{}
	for _, rt := range rc.GetVirtualHosts()[0].GetRoutes() {
		if rt.GetName() == "r" {
			for _, cw := range rt.GetRoute().GetWeightedClusters().GetClusters() {
				w[cw.GetName()] = cw.GetWeight().GetValue()
			}
		}
	}
	return res.r, w
}

// An Envoy on banyan serve's ADS gets the new weights, with the new
// history version, after `banyan routes set`; GET /api/xds reports what it
// acknowledged and needs the admin token.
func TestServe_XDS(t *testing.T) {
	t.Setenv("BANYAN_ADMIN_TOKEN", "ops:s3cret")
	dir := t.TempDir()
	path := filepath.Join(dir, "banyan.yaml")
	a, b := namedBackend(t, "a"), namedBackend(t, "b")
	writeAtomic(t, path, xdsConfigYAML(a.URL, b.URL))
	srv, _ := startServer(t, path, io.Discard)
	if srv.xds == nil {
		t.Fatal("xds.listen is set but serve started no xDS server")
	}

	conn, err := grpc.NewClient(srv.xds.addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &corev3.Node{Id: "envoy-7", Cluster: "edge"}
	names := []string{xds.RouteConfigName}
	if err := st.Send(&discoverygrpc.DiscoveryRequest{Node: node, TypeUrl: resourcev3.RouteType, ResourceNames: names}); err != nil {
		t.Fatal(err)
	}
	r1, w := recvRoutes(t, st)
	if w["a"] != 80 || w["b"] != 20 {
		t.Errorf("initial weights = %v, want a 80 b 20", w)
	}
	v1 := r1.GetVersionInfo()
	if err := st.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.RouteType, ResourceNames: names, VersionInfo: v1, ResponseNonce: r1.GetNonce()}); err != nil {
		t.Fatal(err)
	}

	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"routes", "set", "r", "a=40", "b=60", "--admin", "http://" + srv.adminAddr()}, &out, &errb); code != 0 {
		t.Fatalf("routes set exit %d: %s", code, errb.String())
	}
	r2, w := recvRoutes(t, st)
	if w["a"] != 40 || w["b"] != 60 {
		t.Errorf("weights after routes set = %v, want a 40 b 60", w)
	}
	if got, want := r2.GetVersionInfo(), fmt.Sprint(srv.mgr.Table().Version()); got != want || got == v1 {
		t.Errorf("version after routes set = %q, want the new history seq %q (was %q)", got, want, v1)
	}
	if err := st.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.RouteType, ResourceNames: names, VersionInfo: r2.GetVersionInfo(), ResponseNonce: r2.GetNonce()}); err != nil {
		t.Fatal(err)
	}

	api := "http://" + srv.adminAddr() + "/api/xds"
	resp, err := http.Get(api)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/xds without the token = %d, want 401", resp.StatusCode)
	}
	var status xds.Status
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		req, _ := http.NewRequest("GET", api, nil)
		req.Header.Set("Authorization", "Bearer s3cret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		status = xds.Status{}
		err = json.NewDecoder(resp.Body).Decode(&status)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /api/xds = %d, %v", resp.StatusCode, err)
		}
		if len(status.Nodes) == 1 && status.Nodes[0].AckedVersion == r2.GetVersionInfo() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/api/xds never showed envoy-7 at version %s: %+v", r2.GetVersionInfo(), status)
		}
	}
	if n := status.Nodes[0]; n.ID != "envoy-7" || n.Group != "id/envoy-7" || !n.Connected {
		t.Errorf("node = %+v, want envoy-7 connected in group id/envoy-7", n)
	}
	if status.Version != r2.GetVersionInfo() {
		t.Errorf("published version = %q, want %q", status.Version, r2.GetVersionInfo())
	}
}

func TestXDSDump(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeAtomic(t, good, configYAML("http://127.0.0.1:8081", "http://127.0.0.1:8082", 70, 30))
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"xds", "dump", "--config", good}, &out, &errb); code != 0 {
		t.Fatalf("xds dump exit %d: %s", code, errb.String())
	}
	var res struct {
		Listeners, RouteConfigurations, Clusters []json.RawMessage
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("xds dump did not print JSON: %v\n%s", err, out.String())
	}
	if len(res.Listeners) != 1 || len(res.Clusters) != 2 {
		t.Errorf("dump has %d listeners and %d clusters, want 1 and 2", len(res.Listeners), len(res.Clusters))
	}
	for _, want := range []string{`"weight": 70`, `"weight": 30`, `"use_hash_policy": true`, `"header_name": "X-User"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dump lacks %s", want)
		}
	}
	if !strings.Contains(errb.String(), "valid") {
		t.Errorf("no verdict line on stderr: %q", errb.String())
	}

	// Shadowing with nowhere to mirror to is refused, naming the route.
	bad := filepath.Join(dir, "bad.yaml")
	data, _ := os.ReadFile(good)
	writeAtomic(t, bad, string(data)+"    shadow: {percent: 10, legacy: a}\n")
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"xds", "dump", "--config", bad}, &out, &errb); code != exitFound {
		t.Fatalf("xds dump of a shadow without comparator: exit %d, want %d\n%s", code, exitFound, errb.String())
	}
	if !strings.Contains(errb.String(), "route r") || !strings.Contains(errb.String(), "comparator") {
		t.Errorf("error should name route r and the comparator: %s", errb.String())
	}
}
