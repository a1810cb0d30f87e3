package proxy

import (
	"io"
	"net/http"
	"strings"

	"github.com/banyanhq/banyan/routes"
)

// EnvoyShadowSuffix is what Envoy appends to the Host of a mirrored
// request.
const EnvoyShadowSuffix = "-shadow"

// Comparator returns the handler for requests an Envoy fleet mirrors to
// banyan (xDS request_mirror_policies). Envoy keeps the customer's answer
// to itself, so for each mirrored read the comparator calls both sides of
// the route's pair — the side with the larger weight as primary, asked
// twice when the route samples noise — and diffs and records exactly as
// the built-in shadowing does, on the same worker pool. It answers 202 at
// once; Envoy ignores a mirror's answer.
//
// Writes are never replayed to the legacy side: the customer's write
// already reached the primary, and the legacy monolith knows nothing of
// X-Banyan-Shadow. A write mirrored under `writes: dry-run` goes to the
// new side only, with X-Banyan-Shadow: 1, so the new service sees the
// traffic, and is counted as write_not_compared.
//
// StartShadow must have been called.
func (p *Proxy) Comparator() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Host = strings.TrimSuffix(r.Host, EnvoyShadowSuffix)
		t := p.table()
		rt := t.Match(r)
		if rt == nil || rt.Legacy == "" || p.shadow == nil {
			http.Error(w, "banyan comparator: no shadowed route matches "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		safe := safeMethod(r.Method)
		if !safe && rt.Shadow.Writes != routes.WritesDryRun {
			p.metrics.dropped(rt.Name, dropWriteSkipped)
			w.WriteHeader(http.StatusAccepted)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, int64(rt.Shadow.MaxBody)+1))
		if err != nil {
			p.metrics.dropped(rt.Name, dropBodyIncomplete)
			w.WriteHeader(http.StatusAccepted)
			return
		}
		if int64(len(body)) > int64(rt.Shadow.MaxBody) {
			p.metrics.dropped(rt.Name, dropBodyTooLarge)
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		primary, peer := rt.Legacy, rt.New
		if split := rt.Split(); split[rt.New] > split[rt.Legacy] {
			primary, peer = rt.New, rt.Legacy
		}
		// A dry-run write exercises the new side only: never replayed to legacy.
		p.submit(&shadowJob{table: t, route: rt, primary: primary, peer: peer, req: detach(r), body: body, fetchPrimary: safe, newOnly: !safe})
	})
}
