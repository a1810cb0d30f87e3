package reports

import (
	"context"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const chromiumPath = "/usr/bin/chromium"

// dumpDOM loads target in headless Chromium and returns the DOM after the
// page has loaded. Without Chromium the test is skipped, except under CI,
// where it fails: the dashboard must be checked in a real browser there.
func dumpDOM(t *testing.T, target string) string {
	t.Helper()
	bin := chromiumPath
	if _, err := os.Stat(bin); err != nil {
		if p, err := exec.LookPath("chromium"); err == nil {
			bin = p
		} else if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing: install Debian's chromium package (apt-get install -y chromium); .ci/run does this", chromiumPath)
		} else {
			t.Skipf("%s is missing (apt-get install -y chromium); skipping the browser check", chromiumPath)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+t.TempDir(), "--dump-dom", target)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom %s: %v\n%s", target, err, stderr.String())
	}
	return string(out)
}

func TestDashboard_Chromium(t *testing.T) {
	s := goldenStore(t)
	srv := httptest.NewServer(s.Dashboard(func() []RouteWeights {
		return []RouteWeights{{Name: "orders-read", Split: map[string]int{"legacy": 80, "orders-svc": 20}}}
	}))
	t.Cleanup(srv.Close)

	dom := dumpDOM(t, srv.URL+"/")
	for _, want := range []string{"orders-read", "legacy=80, orders-svc=20", "$.items[*].price", "<svg", "match rate over time"} {
		if !strings.Contains(dom, want) {
			t.Errorf("dashboard DOM lacks %q:\n%s", want, dom)
		}
	}
	dom = dumpDOM(t, srv.URL+"/?route=orders-read&path="+url.QueryEscape("$.items[*].price"))
	for _, want := range []string{"$.items[0].price", "1999", "2000", "/api/orders/"} {
		if !strings.Contains(dom, want) {
			t.Errorf("drill-down DOM lacks %q:\n%s", want, dom)
		}
	}
}
