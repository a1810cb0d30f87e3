package xds

import (
	"slices"
	"strings"
	"testing"
)

// A customer's own X-Banyan-Shadow must not reach a backend through Envoy,
// as it does not through banyan's proxy: the new service takes a request
// carrying it for banyan's dry-run mirror and skips its side effects, so a
// real checkout would be lost. Only the mirror policy of a dry-run write
// sets it, on the mirrored copy.
func TestTranslate_ClientShadowHeaderRemoved(t *testing.T) {
	m, cfg := newManager(t, `
backends:
  legacy: {url: http://127.0.0.1:8081}
  new:    {url: http://127.0.0.1:8082}
comparator: {listen: 127.0.0.1:9903}
routes:
  - name: checkout
    match: {path_prefix: /api/checkout}
    split: {legacy: 50, new: 50}
    shadow: {percent: 10, writes: dry-run}
  - name: default
    split: {new: 100}
`)
	res, err := Translate(m.Table(), OptionsFrom(cfg.XDS))
	if err != nil {
		t.Fatal(err)
	}
	vh := res.Routes[0].GetVirtualHosts()[0]
	removed := func(list []string) bool {
		return slices.ContainsFunc(list, func(h string) bool { return strings.EqualFold(h, ShadowHeader) })
	}
	for _, rt := range vh.GetRoutes() {
		if !removed(vh.GetRequestHeadersToRemove()) && !removed(rt.GetRequestHeadersToRemove()) {
			t.Errorf("route %s forwards a client's %s to the backend", rt.GetName(), ShadowHeader)
		}
	}
	// The dry-run write's mirror still sets it on the mirrored copy.
	found := false
	for _, rt := range vh.GetRoutes() {
		for _, mp := range rt.GetRoute().GetRequestMirrorPolicies() {
			for _, mu := range mp.GetRequestHeadersMutations() {
				if strings.EqualFold(mu.GetAppend().GetHeader().GetKey(), ShadowHeader) {
					found = true
				}
			}
		}
	}
	if !found {
		t.Errorf("no mirror policy sets %s on a dry-run write", ShadowHeader)
	}
}
