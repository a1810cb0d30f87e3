package xds

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"gopkg.in/yaml.v3"
)

// loadBootstrap reads an Envoy bootstrap YAML into the v3 proto, refusing
// unknown fields, as Envoy does.
func loadBootstrap(tb testing.TB, path string) *bootstrapv3.Bootstrap {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	js, err := json.Marshal(doc)
	if err != nil {
		tb.Fatal(err)
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &b); err != nil {
		tb.Fatalf("%s is not a v3 bootstrap: %v", path, err)
	}
	if err := b.ValidateAll(); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return &b
}

func TestBootstrap_Valid(t *testing.T) {
	for _, tc := range []struct{ file, adsHost string }{
		{"bootstrap.yaml", "banyan"},
		{"bootstrap-local.yaml", "127.0.0.1"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b := loadBootstrap(t, filepath.Join("..", "deploy", "envoy", tc.file))
			if b.GetNode().GetId() == "" || b.GetNode().GetCluster() == "" {
				t.Error("node id and cluster must be set: banyan groups nodes by them")
			}
			dr := b.GetDynamicResources()
			if dr.GetCdsConfig().GetAds() == nil || dr.GetLdsConfig().GetAds() == nil {
				t.Error("cds_config and lds_config must come from ADS")
			}
			gs := dr.GetAdsConfig().GetGrpcServices()
			if len(gs) != 1 || dr.GetAdsConfig().GetApiType().String() != "GRPC" {
				t.Fatalf("ads_config = %v, want one GRPC service", dr.GetAdsConfig())
			}
			name := gs[0].GetEnvoyGrpc().GetClusterName()
			for _, c := range b.GetStaticResources().GetClusters() {
				if c.GetName() != name {
					continue
				}
				var opts upstreamhttpv3.HttpProtocolOptions
				if err := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].UnmarshalTo(&opts); err != nil {
					t.Fatalf("ADS cluster %s has no HttpProtocolOptions: %v", name, err)
				}
				if opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
					t.Errorf("ADS cluster %s must speak HTTP/2 (gRPC)", name)
				}
				sa := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
				if got, want := fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue()), tc.adsHost+":18000"; got != want {
					t.Errorf("ADS cluster points at %s, want %s", got, want)
				}
				return
			}
			t.Errorf("ADS cluster %q is not a static cluster", name)
		})
	}
}

// TestEnvoy_EndToEnd runs a real Envoy against the local bootstrap when
// one is installed: a request through Envoy reaches the backend banyan's
// route table names.
func TestEnvoy_EndToEnd(t *testing.T) {
	bin, err := exec.LookPath("envoy")
	if err != nil {
		t.Skip("envoy is not on PATH; the bootstrap and resources are checked without it (TestBootstrap_Valid, TestTranslate_Golden)")
	}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "legacy") }))
	t.Cleanup(backend.Close)
	freePort := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}
	envoyPort, adminPort := freePort(), freePort()
	m, _ := newManager(t, fmt.Sprintf(`
backends:
  legacy: {url: %s}
routes:
  - name: all
    match: {}
    split: {legacy: 100}
xds: {listener_address: "127.0.0.1:%d"}
`, backend.URL, envoyPort))
	_, addr, logs := startXDS(t, m, ServerOptions{Options: Options{ListenerAddress: fmt.Sprintf("127.0.0.1:%d", envoyPort)}})
	_, xdsPort, _ := net.SplitHostPort(addr)

	data, err := os.ReadFile(filepath.Join("..", "deploy", "envoy", "bootstrap-local.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	boot := strings.Replace(string(data), "port_value: 18000", "port_value: "+xdsPort, 1)
	boot = strings.Replace(boot, "port_value: 15000", fmt.Sprintf("port_value: %d", adminPort), 1)
	path := filepath.Join(t.TempDir(), "bootstrap.yaml")
	if err := os.WriteFile(path, []byte(boot), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-c", path, "--base-id", fmt.Sprint(adminPort), "-l", "warning")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })

	url := fmt.Sprintf("http://127.0.0.1:%d/anything", envoyPort)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && string(body) == "legacy" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer from the backend through Envoy within 20s (last err %v)\nenvoy:\n%s\nbanyan:\n%s", err, out, logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "xds ACK") {
		t.Errorf("Envoy's ACKs were not logged:\n%s", logs)
	}
}
