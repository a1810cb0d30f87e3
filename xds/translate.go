// Package xds translates banyan's route table into Envoy resources and
// serves them to an Envoy fleet over ADS (aggregated discovery) with
// go-control-plane, so that at scale Envoy is the data plane and banyan its
// control plane and comparator.
package xds

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/banyanhq/banyan/routes"
)

// Names of the generated resources. Backend clusters are named after their
// backend; the comparator cluster starts with '_', which a backend name
// cannot, so the two never collide.
const (
	ListenerName      = "banyan_http"
	RouteConfigName   = "banyan_routes"
	VirtualHostName   = "banyan"
	ComparatorCluster = "_banyan_comparator"
)

// ShadowHeader marks a mirrored write sent under `writes: dry-run`, as the
// built-in proxy's shadowing does.
const ShadowHeader = "X-Banyan-Shadow"

// DefaultListenerAddress is where the generated Envoy listener binds when
// Options leave it empty.
const DefaultListenerAddress = "0.0.0.0:10000"

// connectTimeout bounds Envoy's TCP connect to a backend or the comparator.
const connectTimeout = 5 * time.Second

// safeMethods are the methods mirrored when a route does not opt into
// `writes: dry-run` (the same set as the built-in proxy).
var safeMethods = []string{"GET", "HEAD", "OPTIONS"}

// Options are the xDS settings that are not part of the route table.
type Options struct {
	// ListenerAddress is host:port for the Envoy listener
	// (DefaultListenerAddress when empty).
	ListenerAddress string
	// Comparator is host:port of banyan's comparator listener, the target
	// of every mirror policy. Required when any route shadows.
	Comparator string
}

// OptionsFrom reads Options from the config's xds section.
func OptionsFrom(c routes.XDSConfig) Options {
	return Options{ListenerAddress: c.ListenerAddress, Comparator: c.Comparator}
}

// Resources is one complete, validated set of Envoy resources.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
}

// ErrInvalidResources is matched by errors.Is when generated resources
// fail validation; nothing is published then.
var ErrInvalidResources = errors.New("invalid xds resources")

// Translate turns the route table into Envoy resources and validates them
// (see Resources.Validate). A route that shadows while Options name no
// comparator is an error naming the route.
func Translate(t *routes.Table, opts Options) (Resources, error) {
	if opts.ListenerAddress == "" {
		opts.ListenerAddress = DefaultListenerAddress
	}
	var res Resources
	var errs []error
	backends := t.Backends()
	names := slices.Sorted(maps.Keys(backends))
	targets := make(map[string]target, len(backends))
	for _, name := range names {
		tg, c, err := backendCluster(name, backends[name])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		targets[name] = tg
		res.Clusters = append(res.Clusters, c)
	}
	shadowing := false
	var rs []*routev3.Route
	for _, rt := range t.Routes() {
		if rt.Shadow.Percent > 0 {
			shadowing = true
			if opts.Comparator == "" {
				errs = append(errs, fmt.Errorf("route %s: shadow.percent is %d but no comparator address is set: set xds.comparator (or comparator.listen) to banyan's comparator host:port", rt.Name, rt.Shadow.Percent))
				continue
			}
		}
		r, err := translateRoute(rt, t.OverrideHeader(), targets)
		if err != nil {
			errs = append(errs, fmt.Errorf("route %s: %w", rt.Name, err))
			continue
		}
		rs = append(rs, r...)
	}
	if shadowing && opts.Comparator != "" {
		c, err := comparatorCluster(opts.Comparator)
		if err != nil {
			errs = append(errs, err)
		} else {
			res.Clusters = append(res.Clusters, c)
			slices.SortFunc(res.Clusters, func(a, b *clusterv3.Cluster) int { return strings.Compare(a.Name, b.Name) })
		}
	}
	l, err := httpListener(opts.ListenerAddress)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return Resources{}, fmt.Errorf("%w: %w", ErrInvalidResources, errors.Join(errs...))
	}
	res.Listeners = []*listenerv3.Listener{l}
	res.Routes = []*routev3.RouteConfiguration{{
		Name: RouteConfigName,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    VirtualHostName,
			Domains: []string{"*"},
			Routes:  rs,
			// A client's own X-Banyan-Shadow is dropped, as banyan's
			// proxy drops it: the new service would take a real request
			// for a dry-run mirror. Only a dry-run write's mirror policy
			// sets it, on the mirrored copy.
			RequestHeadersToRemove: []string{ShadowHeader},
		}},
	}}
	if err := res.Validate(); err != nil {
		return Resources{}, err
	}
	return res, nil
}

// target is how Envoy reaches one backend.
type target struct {
	name     string
	host     string // literal host for host_rewrite_literal, "" = preserve
	basePath string // the backend URL's path, "" when none
	timeout  time.Duration
}

func backendCluster(name string, b routes.BackendConfig) (target, *clusterv3.Cluster, error) {
	u, err := url.Parse(b.URL)
	if err != nil {
		return target{}, nil, fmt.Errorf("backends.%s.url: %w", name, err)
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	c, err := staticOrDNSCluster(name, u.Hostname(), port)
	if err != nil {
		return target{}, nil, fmt.Errorf("backends.%s.url: %w", name, err)
	}
	if u.Scheme == "https" {
		tlsCtx, err := anypb.New(&tlsv3.UpstreamTlsContext{Sni: u.Hostname()})
		if err != nil {
			return target{}, nil, err
		}
		c.TransportSocket = &corev3.TransportSocket{
			Name:       "envoy.transport_sockets.tls",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: tlsCtx},
		}
	}
	tg := target{name: name, basePath: strings.TrimSuffix(u.EscapedPath(), "/"), timeout: b.Timeout}
	switch b.Host {
	case "", "preserve":
	case "backend":
		tg.host = u.Host
	default:
		tg.host = b.Host
	}
	return tg, c, nil
}

func comparatorCluster(addr string) (*clusterv3.Cluster, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("xds.comparator %q: %w", addr, err)
	}
	c, err := staticOrDNSCluster(ComparatorCluster, host, port)
	if err != nil {
		return nil, fmt.Errorf("xds.comparator %q: %w", addr, err)
	}
	return c, nil
}

// staticOrDNSCluster is a STATIC cluster for an IP literal and a
// STRICT_DNS cluster for a host name, with the endpoint inline.
func staticOrDNSCluster(name, host, port string) (*clusterv3.Cluster, error) {
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return nil, fmt.Errorf("port %q is not 1-65535", port)
	}
	typ := clusterv3.Cluster_STRICT_DNS
	if net.ParseIP(host) != nil {
		typ = clusterv3.Cluster_STATIC
	}
	c := &clusterv3.Cluster{
		Name:                 name,
		ConnectTimeout:       durationpb.New(connectTimeout),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: typ},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
						Address: socketAddress(host, uint32(p)),
					}},
				}},
			}},
		},
	}
	if typ == clusterv3.Cluster_STRICT_DNS {
		c.DnsLookupFamily = clusterv3.Cluster_V4_PREFERRED
	}
	return c, nil
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func httpListener(addr string) (*listenerv3.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("xds.listener_address %q: %w", addr, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("xds.listener_address %q: port is not 0-65535", addr)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		return nil, err
	}
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix: "banyan",
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: RouteConfigName,
			ConfigSource: &corev3.ConfigSource{
				ResourceApiVersion:    corev3.ApiVersion_V3,
				ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			},
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router},
		}},
		UseRemoteAddress: wrapperspb.Bool(true),
		// Route by the path with its . and .. segments resolved, as banyan's
		// own proxy does (routes.routingPath): otherwise
		// /api/orders/../checkout takes the orders route and its weights,
		// and the backend serves checkout. Escaped slashes stay as sent
		// (Envoy's default), as they do in banyan.
		NormalizePath: wrapperspb.Bool(true),
	})
	if err != nil {
		return nil, err
	}
	return &listenerv3.Listener{
		Name:    ListenerName,
		Address: socketAddress(host, uint32(p)),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       "envoy.filters.network.http_connection_manager",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm},
			}},
		}},
	}, nil
}

// variant is one Envoy route of a banyan route: a method restriction and
// the mirror policy requests of those methods get.
type variant struct {
	suffix  string
	methods []string // nil = no method restriction beyond the route's own
	mirror  *routev3.RouteAction_RequestMirrorPolicy
}

// translateRoute expands one banyan route into Envoy routes, in priority
// order: one per backend for the override header, then the split. A
// shadowed route is further cut by method, because only reads are mirrored
// unless the route opts into `writes: dry-run`, and then writes carry
// X-Banyan-Shadow: 1.
func translateRoute(rt *routes.Route, override string, targets map[string]target) ([]*routev3.Route, error) {
	split := rt.Split()
	members := slices.Sorted(maps.Keys(split))
	for _, b := range members {
		if _, ok := targets[b]; !ok {
			return nil, fmt.Errorf("split names backend %q, which has no cluster", b)
		}
	}
	base, err := commonBasePath(members, targets)
	if err != nil {
		return nil, err
	}
	vs := variants(rt)
	var out []*routev3.Route
	add := func(name string, headers []*routev3.HeaderMatcher, action *routev3.RouteAction) error {
		for _, v := range vs {
			m, err := routeMatch(rt.Match, v.methods)
			if err != nil {
				return err
			}
			m.Headers = append(m.Headers, headers...)
			a := proto.Clone(action).(*routev3.RouteAction)
			if v.mirror != nil {
				a.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{v.mirror}
			}
			if base != "" {
				a.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{
					Pattern:      &matcherv3.RegexMatcher{Regex: "^"},
					Substitution: base,
				}
			}
			out = append(out, &routev3.Route{
				Name:   name + v.suffix,
				Match:  m,
				Action: &routev3.Route_Route{Route: a},
			})
		}
		return nil
	}
	if override != "" {
		for _, b := range members {
			tg := targets[b]
			a := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: b}}
			if tg.host != "" {
				a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: tg.host}
			}
			setTimeout(a, tg.timeout)
			h := &routev3.HeaderMatcher{Name: override, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
				StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: b}},
			}}
			if err := add(rt.Name+"/override/"+b, []*routev3.HeaderMatcher{h}, a); err != nil {
				return nil, err
			}
		}
	}
	if err := add(rt.Name, nil, splitAction(rt, split, members, targets)); err != nil {
		return nil, err
	}
	return out, nil
}

// splitAction sends the route's traffic by weight. Backends with weight 0
// are left out (the override routes still reach them); a split with one
// live backend is a plain cluster route.
func splitAction(rt *routes.Route, split routes.Split, members []string, targets map[string]target) *routev3.RouteAction {
	var live []string
	var timeout time.Duration
	for _, b := range members {
		if split[b] > 0 {
			live = append(live, b)
			timeout = max(timeout, targets[b].timeout)
		}
	}
	a := &routev3.RouteAction{}
	setTimeout(a, timeout)
	if len(live) == 1 {
		a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: live[0]}
		if h := targets[live[0]].host; h != "" {
			a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: h}
		}
		return a
	}
	wc := &routev3.WeightedCluster{}
	for _, b := range live {
		cw := &routev3.WeightedCluster_ClusterWeight{Name: b, Weight: wrapperspb.UInt32(uint32(split[b]))}
		if h := targets[b].host; h != "" {
			cw.HostRewriteSpecifier = &routev3.WeightedCluster_ClusterWeight_HostRewriteLiteral{HostRewriteLiteral: h}
		}
		wc.Clusters = append(wc.Clusters, cw)
	}
	if hp := hashPolicy(rt.Sticky); hp != nil {
		// Envoy picks the weighted cluster from the sticky key's hash, so a
		// user stays on one side; see docs/xds.md for how ramps move users.
		a.HashPolicy = []*routev3.RouteAction_HashPolicy{hp}
		wc.RandomValueSpecifier = &routev3.WeightedCluster_UseHashPolicy{UseHashPolicy: wrapperspb.Bool(true)}
	}
	a.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
	return a
}

func hashPolicy(s routes.StickyConfig) *routev3.RouteAction_HashPolicy {
	switch {
	case s.Header != "":
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
			Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: s.Header},
		}}
	case s.Cookie != "":
		// No ttl: Envoy never mints the cookie, it only reads the user's.
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{
			Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: s.Cookie},
		}}
	}
	return nil
}

func setTimeout(a *routev3.RouteAction, d time.Duration) {
	if d > 0 {
		a.Timeout = durationpb.New(d)
	}
}

// commonBasePath returns the path every backend URL of the route shares
// ("" for none). Envoy rewrites a route's path once, not per cluster, so
// backends with different base paths cannot share a route.
func commonBasePath(members []string, targets map[string]target) (string, error) {
	base := ""
	for i, b := range members {
		p := targets[b].basePath
		if i == 0 {
			base = p
			continue
		}
		if p != base {
			return "", fmt.Errorf("backends %s and %s have different URL paths (%q, %q); Envoy can rewrite a route's path only once: put the path in the route or give both backends the same one", members[0], b, base, p)
		}
	}
	return base, nil
}

// variants cuts a route by method so that only the requests the built-in
// proxy would mirror get a mirror policy.
func variants(rt *routes.Route) []variant {
	if rt.Shadow.Percent <= 0 {
		return []variant{{}}
	}
	reads, writes := splitMethods(rt.Match.RequestMethods())
	var vs []variant
	if len(reads) > 0 {
		vs = append(vs, variant{suffix: "/reads", methods: reads, mirror: mirrorPolicy(rt, false)})
	}
	if writes == nil && len(rt.Match.Methods) > 0 {
		return vs
	}
	v := variant{suffix: "/writes", methods: writes}
	if rt.Shadow.Writes == routes.WritesDryRun {
		v.mirror = mirrorPolicy(rt, true)
	}
	return append(vs, v)
}

// splitMethods returns the route's safe methods and its other methods.
// For a route without methods the reads are the safe methods and writes is
// nil: everything else, matched by a route that follows the reads route.
func splitMethods(methods []string) (reads, writes []string) {
	if len(methods) == 0 {
		return safeMethods, nil
	}
	for _, m := range methods {
		if slices.Contains(safeMethods, m) {
			reads = append(reads, m)
		} else {
			writes = append(writes, m)
		}
	}
	return reads, writes
}

func mirrorPolicy(rt *routes.Route, write bool) *routev3.RouteAction_RequestMirrorPolicy {
	p := &routev3.RouteAction_RequestMirrorPolicy{
		Cluster: ComparatorCluster,
		RuntimeFraction: &corev3.RuntimeFractionalPercent{
			DefaultValue: &typev3.FractionalPercent{Numerator: uint32(rt.Shadow.Percent), Denominator: typev3.FractionalPercent_HUNDRED},
			RuntimeKey:   "banyan.shadow." + rt.Name,
		},
		// The comparator matches the mirrored request against the same
		// table, so it must see the customer's Host unchanged.
		DisableShadowHostSuffixAppend: true,
	}
	if write {
		p.RequestHeadersMutations = []*mutationv3.HeaderMutation{{
			Action: &mutationv3.HeaderMutation_Append{Append: &corev3.HeaderValueOption{
				Header:       &corev3.HeaderValue{Key: ShadowHeader, Value: "1"},
				AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			}},
		}}
	}
	return p
}

// routeMatch translates a banyan match. methods, when set, replaces the
// route's own method list.
func routeMatch(m routes.MatchConfig, methods []string) (*routev3.RouteMatch, error) {
	rm := &routev3.RouteMatch{}
	prefix := strings.TrimSuffix(m.PathPrefix, "/")
	switch {
	case m.Path != "":
		rm.PathSpecifier = &routev3.RouteMatch_Path{Path: m.Path}
	case m.PathPrefix == "/" || (m.PathPrefix == "" && m.PathTemplate == ""):
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
	case m.PathPrefix != "":
		// Whole segments, like banyan: /api/orders matches /api/orders
		// and /api/orders/7, not /api/ordersX.
		rm.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: prefix}
	default:
		re, err := templateRegex(m.PathTemplate)
		if err != nil {
			return nil, err
		}
		rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}}
	}
	if methods == nil {
		methods = m.RequestMethods()
	}
	if h := methodMatcher(methods); h != nil {
		rm.Headers = append(rm.Headers, h)
	}
	for _, name := range slices.Sorted(maps.Keys(m.Headers)) {
		v := m.Headers[name]
		h := &routev3.HeaderMatcher{Name: name}
		if v == "*" {
			h.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
		} else {
			h.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v},
			}}
		}
		rm.Headers = append(rm.Headers, h)
	}
	return rm, nil
}

func methodMatcher(methods []string) *routev3.HeaderMatcher {
	switch len(methods) {
	case 0:
		return nil
	case 1:
		return &routev3.HeaderMatcher{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
			StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: methods[0]}},
		}}
	}
	quoted := make([]string, len(methods))
	for i, m := range methods {
		quoted[i] = regexp.QuoteMeta(m)
	}
	return &routev3.HeaderMatcher{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
		StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
			SafeRegex: &matcherv3.RegexMatcher{Regex: "^(" + strings.Join(quoted, "|") + ")$"},
		}},
	}}
}

// templateRegex turns "/api/orders/{id}" into an RE2 pattern where each
// {var} is exactly one non-empty segment.
func templateRegex(t string) (string, error) {
	if !strings.HasPrefix(t, "/") {
		return "", fmt.Errorf("path_template %q must start with /", t)
	}
	parts := strings.Split(t[1:], "/")
	var b strings.Builder
	b.WriteString("^")
	for _, p := range parts {
		b.WriteString("/")
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			b.WriteString("[^/]+")
		} else {
			b.WriteString(regexp.QuoteMeta(p))
		}
	}
	b.WriteString("$")
	return b.String(), nil
}

// Validate runs every resource's ValidateAll and banyan's own reference
// check: each cluster a route, a weighted cluster or a mirror policy names
// must exist, and the listener's route configuration must exist. Envoy
// itself silently skips a mirror to a missing cluster, and the snapshot's
// Consistent does not look at route-to-cluster references.
func (r Resources) Validate() error {
	var errs []error
	clusters := map[string]bool{}
	for _, c := range r.Clusters {
		if err := c.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("cluster %s: %w", c.GetName(), err))
		}
		clusters[c.GetName()] = true
	}
	rcs := map[string]bool{}
	for _, rc := range r.Routes {
		if err := rc.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("route configuration %s: %w", rc.GetName(), err))
		}
		rcs[rc.GetName()] = true
		for _, vh := range rc.GetVirtualHosts() {
			for _, rt := range vh.GetRoutes() {
				for _, ref := range clusterRefs(rt.GetRoute()) {
					if !clusters[ref.name] {
						errs = append(errs, fmt.Errorf("route %s: %s names cluster %q, which is not in the snapshot", rt.GetName(), ref.field, ref.name))
					}
				}
			}
		}
	}
	for _, l := range r.Listeners {
		if err := l.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("listener %s: %w", l.GetName(), err))
		}
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				var hcm hcmv3.HttpConnectionManager
				if f.GetTypedConfig() == nil || f.GetTypedConfig().UnmarshalTo(&hcm) != nil {
					continue
				}
				if err := hcm.ValidateAll(); err != nil {
					errs = append(errs, fmt.Errorf("listener %s: http connection manager: %w", l.GetName(), err))
				}
				if name := hcm.GetRds().GetRouteConfigName(); name != "" && !rcs[name] {
					errs = append(errs, fmt.Errorf("listener %s: route configuration %q is not in the snapshot", l.GetName(), name))
				}
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidResources, errors.Join(errs...))
	}
	return nil
}

// equal reports whether both hold the same resources in the same order.
func (r Resources) equal(o Resources) bool {
	return slices.EqualFunc(r.Listeners, o.Listeners, func(a, b *listenerv3.Listener) bool { return proto.Equal(a, b) }) &&
		slices.EqualFunc(r.Routes, o.Routes, func(a, b *routev3.RouteConfiguration) bool { return proto.Equal(a, b) }) &&
		slices.EqualFunc(r.Clusters, o.Clusters, func(a, b *clusterv3.Cluster) bool { return proto.Equal(a, b) })
}

type clusterRef struct{ field, name string }

func clusterRefs(a *routev3.RouteAction) []clusterRef {
	if a == nil {
		return nil
	}
	var refs []clusterRef
	if c := a.GetCluster(); c != "" {
		refs = append(refs, clusterRef{"cluster", c})
	}
	for _, cw := range a.GetWeightedClusters().GetClusters() {
		refs = append(refs, clusterRef{"weighted_clusters", cw.GetName()})
	}
	for _, m := range a.GetRequestMirrorPolicies() {
		refs = append(refs, clusterRef{"request_mirror_policies", m.GetCluster()})
	}
	return refs
}

// MarshalJSON renders the resources as protojson (Envoy's snake_case
// field names) under listeners, route_configurations and clusters, in a
// stable order and layout, for review and golden files.
func (r Resources) MarshalJSON() ([]byte, error) {
	out := struct {
		Listeners []json.RawMessage `json:"listeners"`
		Routes    []json.RawMessage `json:"route_configurations"`
		Clusters  []json.RawMessage `json:"clusters"`
	}{}
	var err error
	if out.Listeners, err = marshalAll(r.Listeners); err != nil {
		return nil, err
	}
	if out.Routes, err = marshalAll(r.Routes); err != nil {
		return nil, err
	}
	if out.Clusters, err = marshalAll(r.Clusters); err != nil {
		return nil, err
	}
	// encoding/json compacts each raw message, dropping the random
	// whitespace protojson inserts to keep its output from being relied on.
	return json.Marshal(out)
}

func marshalAll[M proto.Message](ms []M) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, len(ms))
	for _, m := range ms {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}
