package diff

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestJudge(t *testing.T) {
	c, err := Compile(Rules{})
	if err != nil {
		t.Fatal(err)
	}
	resp := func(body string) Response {
		return Response{Status: 200, Header: map[string][]string{"Content-Type": {"application/json"}}, Body: []byte(body)}
	}
	// Two legacy answers to the same request differ in request_id and in
	// the generated_at of every item: that is noise.
	legacy1 := resp(`{"meta":{"request_id":"a1"},"items":[{"id":1,"generated_at":"t1"},{"id":2,"generated_at":"t1"}],"total":10}`)
	legacy2 := resp(`{"meta":{"request_id":"b2"},"items":[{"id":1,"generated_at":"t2"},{"id":2,"generated_at":"t2"}],"total":10}`)
	noise := NewNoise()
	noise.Learn(c.Compare(legacy1, legacy2))
	if got := noise.Paths(); len(got) != 0 {
		t.Fatalf("one sample confirmed %v as noise, want none before the second", got)
	}
	noise.Learn(c.Compare(legacy2, legacy1))
	if got, want := noise.Paths(), []string{"$.items[*].generated_at", "$.meta.request_id"}; !slices.Equal(got, want) {
		t.Fatalf("Paths() = %v, want %v", got, want)
	}

	tests := []struct {
		name        string
		legacy, new Response
		wantVerdict Verdict
		wantDiffs   string
	}{
		{"match", legacy1, legacy1, Match, ""},
		{"request_id only is noise", legacy1, resp(`{"meta":{"request_id":"zz"},"items":[{"id":1,"generated_at":"t1"},{"id":2,"generated_at":"t9"}],"total":10}`),
			NoiseOnly, "changed $.meta.request_id \"a1\" \"zz\" noise\nchanged $.items[1].generated_at \"t1\" \"t9\" noise\n"},
		{"a real field still differs", legacy1, resp(`{"meta":{"request_id":"zz"},"items":[{"id":1,"generated_at":"t1"},{"id":2,"generated_at":"t1"}],"total":11}`),
			Diff, "changed $.meta.request_id \"a1\" \"zz\" noise\nchanged $.total 10 11\n"},
		{"transport error", legacy1, Response{Err: "timeout"}, Error, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var diffs []Difference
			if tt.new.Err == "" {
				diffs = c.Compare(tt.legacy, tt.new)
			}
			got, verdict := Judge(tt.legacy, tt.new, diffs, noise)
			if verdict != tt.wantVerdict {
				t.Errorf("verdict = %s, want %s", verdict, tt.wantVerdict)
			}
			if s := formatDiffs(got); s != tt.wantDiffs {
				t.Errorf("differences:\n%s\nwant:\n%s", s, tt.wantDiffs)
			}
			for _, d := range diffs {
				if d.Noise {
					t.Errorf("Judge marked the caller's slice: %+v", d)
				}
			}
		})
	}
}

func TestJudge_nilNoise(t *testing.T) {
	_, v := Judge(Response{}, Response{}, []Difference{{Path: "status", Kind: Changed}}, nil)
	if v != Diff {
		t.Errorf("verdict = %s, want diff", v)
	}
}

// TestNoise_presence: a key learned as coming and going is noise when
// it comes or goes, not what lies below it; a changed leaf is noise when
// it changes, not for a difference below it.
func TestNoise_presence(t *testing.T) {
	n := NewNoise()
	for range MinSamples {
		n.Learn([]Difference{{Path: "$.debug", Kind: Missing}, {Path: "$.items[3].tag", Kind: Changed}})
	}
	diffs := []Difference{
		{Path: "$.debug", Kind: Extra},             // the key came: noise
		{Path: "$.debug.timing.ms", Kind: Changed}, // below a key that comes and goes: not noise
		{Path: "$.debug", Kind: Type},              // of another type on both sides: not noise
		{Path: "$.items[0].tag", Kind: Changed},    // same pattern
		{Path: "$.items[0].tag.x", Kind: Changed},  // below a changed leaf: not noise
	}
	got, v := Judge(Response{}, Response{}, diffs, n)
	if v != Diff {
		t.Errorf("verdict = %s, want diff", v)
	}
	for i, want := range []bool{true, false, false, true, false} {
		if got[i].Noise != want {
			t.Errorf("%s %s noise = %v, want %v", got[i].Kind, got[i].Path, got[i].Noise, want)
		}
	}
}

func TestNoise_concurrent(t *testing.T) {
	n := NewNoise()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				n.Learn([]Difference{{Path: "$.a[" + string(rune('0'+i)) + "].b", Kind: Changed}})
				Judge(Response{}, Response{}, []Difference{{Path: "$.a[1].b"}}, n)
				n.Paths()
			}
		}()
	}
	wg.Wait()
	if got := n.Paths(); len(got) != 1 || got[0] != "$.a[*].b" {
		t.Errorf("Paths() = %v", got)
	}
}

func TestNoise_bounded(t *testing.T) {
	n := NewNoise()
	// Every sample shows 3000 fields and 3000 lines varying.
	var sample []Difference
	for i := range 3000 {
		sample = append(sample, Difference{Path: "$.k" + strconv.Itoa(i), Kind: Changed},
			Difference{Path: bodyLine(i), Kind: Changed, Legacy: "id=a", New: "id=b"})
	}
	for range MinSamples {
		n.Learn(sample)
	}
	if got := len(n.Paths()); got != maxNoisePatterns {
		t.Errorf("learned %d patterns, want cap %d", got, maxNoisePatterns)
	}
}

// jsonResp is a JSON answer with the given status and body.
func jsonResp(status int, body string) Response {
	return Response{Status: status, Header: map[string][]string{"Content-Type": {"application/json"}}, Body: []byte(body)}
}

// withHeader returns r with header name set to v.
func withHeader(r Response, name, v string) Response {
	h := map[string][]string{name: {v}}
	for k, vv := range r.Header {
		h[k] = vv
	}
	r.Header = h
	return r
}

func htmlResp(body string) Response {
	return Response{Status: 200, Header: map[string][]string{"Content-Type": {"text/html"}}, Body: []byte(body)}
}

func textResp(body string) Response {
	return Response{Status: 200, Header: map[string][]string{"Content-Type": {"text/plain"}}, Body: []byte(body)}
}

// TestNoise_neverHidesRealDifferences: what two samples of the same side
// show must not teach Noise to hide a difference of another kind. Each
// case failed before noise was limited (a review found them).
func TestNoise_neverHidesRealDifferences(t *testing.T) {
	tests := []struct {
		name                  string
		rules                 Rules    // the route's rules; zero for none
		sample1, sample2      Response // two answers of the same side
		legacy, new           Response // then compared
		wantVerdict           Verdict
		wantNoise, wantSignal []string // paths marked noise / not
	}{
		{
			// One 503 while sampling must not make a new side that always
			// answers 500 look like noise.
			name:    "an error while sampling",
			sample1: jsonResp(200, `{"id":7,"total":100}`), sample2: jsonResp(503, `{"error":"overloaded"}`),
			legacy: jsonResp(200, `{"id":7,"total":100}`), new: jsonResp(500, `{"error":"NullPointerException"}`),
			wantVerdict: Diff, wantSignal: []string{"status", "$.id", "$.total", "$.error"},
		},
		{
			// A maintenance page served with 200 while sampling: an
			// answer of another kind, as an error is, teaches nothing, so
			// a new side that labels its JSON text/plain still differs.
			name:    "a page of another type while sampling",
			sample1: jsonResp(200, `{"id":7,"total":100}`), sample2: Response{Status: 200, Header: map[string][]string{"Content-Type": {"text/html"}}, Body: []byte("<html><body>Back soon</body></html>")},
			legacy: jsonResp(200, `{"id":7,"total":100}`), new: Response{Status: 200, Header: map[string][]string{"Content-Type": {"text/plain"}}, Body: []byte(`{"id":7,"total":100}`)},
			wantVerdict: Diff, wantSignal: []string{"header.Content-Type"},
		},
		{
			// A list that gained an element between the samples: the
			// element's presence is noise, the prices in it are not.
			name:    "a list that grew",
			sample1: jsonResp(200, `{"items":[{"id":1,"price":10}]}`), sample2: jsonResp(200, `{"items":[{"id":1,"price":10},{"id":2,"price":5}]}`),
			legacy: jsonResp(200, `{"items":[{"id":1,"price":10},{"id":2,"price":5}]}`), new: jsonResp(200, `{"items":[{"id":1,"price":12}]}`),
			wantVerdict: Diff, wantNoise: []string{"$.items[1]"}, wantSignal: []string{"$.items[0].price"},
		},
		{
			// Newest first: the element came at the front, and what
			// follows moved up one index. Only its presence is noise.
			name:    "a list that grew at the front",
			sample1: jsonResp(200, `{"items":[{"id":1,"price":10}]}`), sample2: jsonResp(200, `{"items":[{"id":2,"price":5},{"id":1,"price":10}]}`),
			legacy: jsonResp(200, `{"items":[{"id":2,"price":5},{"id":1,"price":10}]}`), new: jsonResp(200, `{"items":[{"id":2,"price":5},{"id":1,"price":12}]}`),
			wantVerdict: Diff, wantSignal: []string{"$.items[1].price"},
		},
		{
			// A page of the latest orders, newest first: one came in, one
			// dropped off the end. Only presence is noise.
			name:        "a fixed-size page that moved on",
			sample1:     jsonResp(200, `{"items":[{"id":3,"price":30},{"id":2,"price":20},{"id":1,"price":10}]}`),
			sample2:     jsonResp(200, `{"items":[{"id":4,"price":40},{"id":3,"price":30},{"id":2,"price":20}]}`),
			legacy:      jsonResp(200, `{"items":[{"id":4,"price":40},{"id":3,"price":30},{"id":2,"price":20}]}`),
			new:         jsonResp(200, `{"items":[{"id":4,"price":40},{"id":3,"price":33},{"id":2,"price":20}]}`),
			wantVerdict: Diff, wantSignal: []string{"$.items[1].price"},
		},
		{
			// Newest first: an order came in at the front and, meanwhile,
			// another was paid. Only that one's status and the new
			// order's presence vary, not every order's id and total.
			name:        "a list that grew at the front while an element changed",
			sample1:     jsonResp(200, `{"orders":[{"id":3,"total":30,"status":"new"},{"id":2,"total":20,"status":"new"},{"id":1,"total":10,"status":"paid"}]}`),
			sample2:     jsonResp(200, `{"orders":[{"id":4,"total":40,"status":"new"},{"id":3,"total":30,"status":"new"},{"id":2,"total":20,"status":"paid"},{"id":1,"total":10,"status":"paid"}]}`),
			legacy:      jsonResp(200, `{"orders":[{"id":4,"total":40,"status":"new"},{"id":3,"total":30,"status":"new"}]}`),
			new:         jsonResp(200, `{"orders":[{"id":4,"total":45,"status":"new"},{"id":3,"total":30,"status":"new"}]}`),
			wantVerdict: Diff, wantSignal: []string{"$.orders[0].total"},
		},
		{
			// An unordered list (a multiset) whose elements hold a time
			// that varies: the time is noise, not the elements' presence,
			// so a changed price in one element still differs.
			name:        "an unordered list with a varying field",
			rules:       Rules{Unordered: map[string]string{"$.items": ""}},
			sample1:     jsonResp(200, `{"items":[{"id":1,"price":10,"at":"t1"},{"id":2,"price":20,"at":"t1"}]}`),
			sample2:     jsonResp(200, `{"items":[{"id":1,"price":10,"at":"t2"},{"id":2,"price":20,"at":"t2"}]}`),
			legacy:      jsonResp(200, `{"items":[{"id":1,"price":10,"at":"t3"},{"id":2,"price":20,"at":"t3"}]}`),
			new:         jsonResp(200, `{"items":[{"id":2,"price":20,"at":"t4"},{"id":1,"price":12,"at":"t4"}]}`),
			wantVerdict: Diff, wantNoise: []string{"$.items[0].at", "$.items[1].at"}, wantSignal: []string{"$.items[0].price"},
		},
		{
			name:    "a list of numbers that grew",
			sample1: jsonResp(200, `{"ids":[1]}`), sample2: jsonResp(200, `{"ids":[1,2]}`),
			legacy: jsonResp(200, `{"ids":[1,2]}`), new: jsonResp(200, `{"ids":[1,3]}`),
			wantVerdict: Diff, wantSignal: []string{"$.ids[1]"},
		},
		{
			// A text line with a request id: the id is noise, the total
			// in the same line is not.
			name:    "one token of a text line",
			sample1: textResp("order=7 total=100 req=aaa\n"), sample2: textResp("order=7 total=100 req=bbb\n"),
			legacy: textResp("order=7 total=100 req=ccc\n"), new: textResp("order=7 total=999 req=ddd\n"),
			wantVerdict: Diff, wantSignal: []string{"body:L1"},
		},
		{
			name:    "only the varying token of a text line",
			sample1: textResp("order=7 total=100 req=aaa\n"), sample2: textResp("order=7 total=100 req=bbb\n"),
			legacy: textResp("order=7 total=100 req=ccc\n"), new: textResp("order=7 total=100 req=ddd\n"),
			wantVerdict: NoiseOnly, wantNoise: []string{"body:L1"},
		},
		{
			// A CSP nonce (base64: '+' and '/' fall anywhere in it) on a
			// script tag: it varies as one word, however many '+' and '/'
			// it holds, so answers that differ only in it are noise.
			name:        "a base64 nonce",
			sample1:     htmlResp(`<script nonce="Ab+cD/efGhIjKlMnOpQrSt==">go()</script>`),
			sample2:     htmlResp(`<script nonce="AbcDefGhIj+KlMnOpQrStu==">go()</script>`),
			legacy:      htmlResp(`<script nonce="x/y+z/AbCdEfGhIjKlMnOp==">go()</script>`),
			new:         htmlResp(`<script nonce="ZyXwVuTsRqPoNmLkJiHgFe==">go()</script>`),
			wantVerdict: NoiseOnly, wantNoise: []string{"body:L1"},
		},
		{
			name:        "a real change beside a base64 nonce",
			sample1:     textResp("nonce=Ab+cD/efGhIjKlMnOpQrSt== total=10\n"),
			sample2:     textResp("nonce=AbcDefGhIj+KlMnOpQrStu== total=10\n"),
			legacy:      textResp("nonce=x/y+z/AbCdEfGhIjKlMnOp== total=10\n"),
			new:         textResp("nonce=ZyXwVuTsRqPoNmLkJiHgFe== total=11\n"),
			wantVerdict: Diff, wantSignal: []string{"body:L1"},
		},
		{
			// A list whose order varies between the samples: its order
			// is noise, what its elements hold is not.
			name:    "a list in varying order",
			sample1: jsonResp(200, `{"items":[{"id":1,"price":10},{"id":2,"price":5}]}`), sample2: jsonResp(200, `{"items":[{"id":2,"price":5},{"id":1,"price":10}]}`),
			legacy: jsonResp(200, `{"items":[{"id":1,"price":10},{"id":2,"price":5}]}`), new: jsonResp(200, `{"items":[{"id":1,"price":12},{"id":2,"price":5}]}`),
			wantVerdict: Diff, wantSignal: []string{"$.items[0].price"},
		},
		{
			name:    "only the order of a list in varying order",
			sample1: jsonResp(200, `{"items":[{"id":1,"price":10},{"id":2,"price":5}]}`), sample2: jsonResp(200, `{"items":[{"id":2,"price":5},{"id":1,"price":10}]}`),
			legacy: jsonResp(200, `{"items":[{"id":1,"price":10},{"id":2,"price":5}]}`), new: jsonResp(200, `{"items":[{"id":2,"price":5},{"id":1,"price":10}]}`),
			wantVerdict: NoiseOnly, wantNoise: []string{"$.items"},
		},
		{
			// A one-line (minified) HTML page whose request id and time
			// vary in two elements: each piece of the line between tags
			// learns its own varying words.
			name:        "two varying elements of a one-line page",
			sample1:     htmlResp("<html><body><p>req aaa</p><p>at 10:00:01</p><p>total 10</p></body></html>"),
			sample2:     htmlResp("<html><body><p>req bbb</p><p>at 10:00:02</p><p>total 10</p></body></html>"),
			legacy:      htmlResp("<html><body><p>req ccc</p><p>at 10:00:03</p><p>total 10</p></body></html>"),
			new:         htmlResp("<html><body><p>req ddd</p><p>at 10:00:04</p><p>total 10</p></body></html>"),
			wantVerdict: NoiseOnly,
		},
		{
			name:        "a real change beside them in a one-line page",
			sample1:     htmlResp("<html><body><p>req aaa</p><p>at 10:00:01</p><p>total 10</p></body></html>"),
			sample2:     htmlResp("<html><body><p>req bbb</p><p>at 10:00:02</p><p>total 10</p></body></html>"),
			legacy:      htmlResp("<html><body><p>req ccc</p><p>at 10:00:03</p><p>total 10</p></body></html>"),
			new:         htmlResp("<html><body><p>req ddd</p><p>at 10:00:04</p><p>total 11</p></body></html>"),
			wantVerdict: Diff, wantSignal: []string{"body:L1.5"},
		},
		{
			// A newest-first feed gains one entry between two answers:
			// one entry coming or going is noise, a new side that
			// answers an empty feed is not.
			name:    "a feed that grew, answered empty",
			sample1: jsonResp(200, `{"feed":[{"id":3},{"id":2},{"id":1}]}`), sample2: jsonResp(200, `{"feed":[{"id":4},{"id":3},{"id":2},{"id":1}]}`),
			legacy: jsonResp(200, `{"feed":[{"id":4},{"id":3},{"id":2},{"id":1}]}`), new: jsonResp(200, `{"feed":[]}`),
			wantVerdict: Diff, wantSignal: []string{"$.feed[0]", "$.feed[1]", "$.feed[2]", "$.feed[3]"},
		},
		{
			name:    "a feed that grew, one entry behind",
			sample1: jsonResp(200, `{"feed":[{"id":3},{"id":2},{"id":1}]}`), sample2: jsonResp(200, `{"feed":[{"id":4},{"id":3},{"id":2},{"id":1}]}`),
			legacy: jsonResp(200, `{"feed":[{"id":4},{"id":3},{"id":2},{"id":1}]}`), new: jsonResp(200, `{"feed":[{"id":3},{"id":2},{"id":1}]}`),
			wantVerdict: NoiseOnly, wantNoise: []string{"$.feed[0]"},
		},
		{
			// An optional key seen in one sample only: only its presence
			// is noise, not what it holds when both sides have it.
			name:    "a key there in one sample",
			sample1: jsonResp(200, `{"id":7,"debug":{"ms":3}}`), sample2: jsonResp(200, `{"id":7}`),
			legacy: jsonResp(200, `{"id":7,"debug":{"ms":3}}`), new: jsonResp(200, `{"id":8,"debug":{"ms":9}}`),
			wantVerdict: Diff, wantSignal: []string{"$.id", "$.debug.ms"},
		},
		{
			// Legacy answers sometimes with a coupon, sometimes without:
			// a new side that gets the discount wrong still differs.
			name:    "a key that comes and goes, different below it",
			sample1: jsonResp(200, `{"id":7,"coupon":{"code":"X","discount":5}}`), sample2: jsonResp(200, `{"id":7}`),
			legacy: jsonResp(200, `{"id":7,"coupon":{"code":"X","discount":5}}`), new: jsonResp(200, `{"id":7,"coupon":{"code":"X","discount":50}}`),
			wantVerdict: Diff, wantSignal: []string{"$.coupon.discount"},
		},
		{
			name:    "only the presence of a key that comes and goes",
			sample1: jsonResp(200, `{"id":7,"coupon":{"code":"X","discount":5}}`), sample2: jsonResp(200, `{"id":7}`),
			legacy: jsonResp(200, `{"id":7,"coupon":{"code":"X","discount":5}}`), new: jsonResp(200, `{"id":7}`),
			wantVerdict: NoiseOnly, wantNoise: []string{"$.coupon"},
		},
		{
			// A coupon that is null in one answer and an object in the
			// other: that its type varies is noise, not what it holds
			// when it is an object on both sides.
			name:    "a value whose type varies, different below it",
			sample1: jsonResp(200, `{"id":7,"coupon":{"code":"X","discount":5}}`), sample2: jsonResp(200, `{"id":7,"coupon":null}`),
			legacy: jsonResp(200, `{"id":7,"coupon":{"code":"X","discount":5}}`), new: jsonResp(200, `{"id":7,"coupon":{"code":"X","discount":50}}`),
			wantVerdict: Diff, wantSignal: []string{"$.coupon.discount"},
		},
		{
			name:    "only the type of a value whose type varies",
			sample1: jsonResp(200, `{"id":7,"coupon":{"code":"X","discount":5}}`), sample2: jsonResp(200, `{"id":7,"coupon":null}`),
			legacy: jsonResp(200, `{"id":7,"coupon":{"code":"X","discount":5}}`), new: jsonResp(200, `{"id":7,"coupon":null}`),
			wantVerdict: NoiseOnly, wantNoise: []string{"$.coupon"},
		},
		{
			// Null or an object was seen; a string is another type.
			name:    "a value whose type varies, of a type never seen",
			sample1: jsonResp(200, `{"id":7,"coupon":{"code":"X","discount":5}}`), sample2: jsonResp(200, `{"id":7,"coupon":null}`),
			legacy: jsonResp(200, `{"id":7,"coupon":{"code":"X","discount":5}}`), new: jsonResp(200, `{"id":7,"coupon":"X"}`),
			wantVerdict: Diff, wantSignal: []string{"$.coupon"},
		},
		{
			// A header legacy sends on some answers only: its presence
			// is noise, a value new gets wrong is not.
			name:    "a header there in some answers",
			rules:   Rules{Headers: []string{"Content-Type", "Cache-Control"}},
			sample1: withHeader(jsonResp(200, `{"id":7}`), "Cache-Control", "no-store"), sample2: jsonResp(200, `{"id":7}`),
			legacy: withHeader(jsonResp(200, `{"id":7}`), "Cache-Control", "no-store"), new: withHeader(jsonResp(200, `{"id":7}`), "Cache-Control", "public, max-age=86400"),
			wantVerdict: Diff, wantSignal: []string{"header.Cache-Control"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Compile(tt.rules)
			if err != nil {
				t.Fatal(err)
			}
			n := NewNoise()
			n.Learn(c.Compare(tt.sample1, tt.sample2))
			n.Learn(c.Compare(tt.sample2, tt.sample1)) // a second sample
			got, v := Judge(tt.legacy, tt.new, c.Compare(tt.legacy, tt.new), n)
			if v != tt.wantVerdict {
				t.Errorf("learned %v; verdict %s, want %s\n%s", n.Paths(), v, tt.wantVerdict, formatDiffs(got))
			}
			noise := map[string]bool{}
			for _, d := range got {
				noise[d.Path] = d.Noise
			}
			for _, p := range tt.wantNoise {
				if v, ok := noise[p]; !ok || !v {
					t.Errorf("%s: want a difference marked noise (learned %v)\n%s", p, n.Paths(), formatDiffs(got))
				}
			}
			for _, p := range tt.wantSignal {
				if v, ok := noise[p]; !ok || v {
					t.Errorf("%s: want a difference not marked noise (learned %v)\n%s", p, n.Paths(), formatDiffs(got))
				}
			}
		})
	}
}

// TestNoise_oneSampleIsNotEnough: a field that changed between the two
// answers of a single sample (an order updated meanwhile) is not noise
// until another sample shows it varying too.
func TestNoise_oneSampleIsNotEnough(t *testing.T) {
	c, err := Compile(Rules{})
	if err != nil {
		t.Fatal(err)
	}
	n := NewNoise()
	n.Learn(c.Compare(jsonResp(200, `{"id":7,"total":100,"rid":"a"}`), jsonResp(200, `{"id":7,"total":120,"rid":"b"}`)))
	n.Learn(c.Compare(jsonResp(200, `{"id":8,"total":50,"rid":"c"}`), jsonResp(200, `{"id":8,"total":50,"rid":"d"}`)))
	legacy, newer := jsonResp(200, `{"id":9,"total":10,"rid":"e"}`), jsonResp(200, `{"id":9,"total":11,"rid":"f"}`)
	got, v := Judge(legacy, newer, c.Compare(legacy, newer), n)
	if v != Diff || !slices.Equal(n.Paths(), []string{"$.rid"}) {
		t.Errorf("learned %v; verdict %s, want diff with only $.rid as noise\n%s", n.Paths(), v, formatDiffs(got))
	}
}

// TestNoise_rareOddAnswersAreNotNoise: a legacy that now and then answers
// 200 {"error":"busy"} shows, in a few samples of thousands, every field
// missing. Those fields do not vary in a fair share of samples, so they
// are not noise: a $.total that new gets wrong still differs, while the
// request_id that varies in every sample is noise.
func TestNoise_rareOddAnswersAreNotNoise(t *testing.T) {
	c, err := Compile(Rules{})
	if err != nil {
		t.Fatal(err)
	}
	n := NewNoise()
	answer := func(i int) Response {
		return jsonResp(200, `{"id":7,"total":100,"request_id":"r`+strconv.Itoa(i)+`"}`)
	}
	busy := jsonResp(200, `{"error":"busy","request_id":"rb"}`)
	for i := range 1000 {
		second := answer(i + 1)
		if i == 100 || i == 700 {
			second = busy
		}
		n.Learn(c.Compare(answer(i), second))
	}
	legacy, newer := answer(5000), jsonResp(200, `{"id":7,"total":101,"request_id":"n1"}`)
	got, v := Judge(legacy, newer, c.Compare(legacy, newer), n)
	if v != Diff {
		t.Errorf("learned %v; verdict %s, want diff\n%s", n.Paths(), v, formatDiffs(got))
	}
	for _, d := range got {
		if want := d.Path == "$.request_id"; d.Noise != want {
			t.Errorf("%s noise = %v, want %v (learned %v)", d.Path, d.Noise, want, n.Paths())
		}
	}
}

// TestNoise_manyVaryingLines: a text page with more than 20 lines that
// each carry a per-request value (a CSP nonce on every script tag) is
// learned line by line past the 20th, so two answers that differ only in
// it are noise-only; a real change on line 23 still differs and is shown,
// and what is not shown is summed up in one difference at "body".
func TestNoise_manyVaryingLines(t *testing.T) {
	c, err := Compile(Rules{})
	if err != nil {
		t.Fatal(err)
	}
	page := func(nonce string, total int) Response {
		var b strings.Builder
		for i := 1; i <= 30; i++ {
			v := i
			if i == 23 {
				v = total
			}
			fmt.Fprintf(&b, "script nonce=%s item %d\n", nonce, v)
		}
		return textResp(b.String())
	}
	n := NewNoise()
	n.Learn(c.Compare(page("aaa", 23), page("bbb", 23)))
	n.Learn(c.Compare(page("ccc", 23), page("ddd", 23)))
	got, v := Judge(page("eee", 23), page("fff", 23), c.Compare(page("eee", 23), page("fff", 23)), n)
	if v != NoiseOnly {
		t.Errorf("nonces only: verdict %s, want noise-only\n%s", v, formatDiffs(got))
	}
	if last := got[len(got)-1]; len(got) != maxShownLines+1 || last.Path != "body" || last.Kind != More || last.Lines != 10 || !last.Noise {
		t.Errorf("nonces only: want %d lines shown and the other 10 summed up at body as noise:\n%s", maxShownLines, formatDiffs(got))
	}
	got, v = Judge(page("eee", 23), page("fff", 99), c.Compare(page("eee", 23), page("fff", 99)), n)
	if v != Diff {
		t.Errorf("line 23 changed: verdict %s, want diff\n%s", v, formatDiffs(got))
	}
	shown := false
	for _, d := range got {
		if d.Path == "body:L23" && !d.Noise {
			shown = true
		}
	}
	if !shown || len(got) > 2*maxShownLines+1 {
		t.Errorf("want body:L23 shown as a difference among at most %d:\n%s", 2*maxShownLines+1, formatDiffs(got))
	}
}

// TestNoise_listThatMovedWithVaryingField: a newest-first page whose
// items each carry a signed image URL that differs on every answer. Once
// the URL is noise, a page that moved along is still seen as the same
// items that came and went, so only presence is learned from it: a real
// price change stays a difference. (Compared element by element, every
// id and price would have been learned as noise.)
func TestNoise_listThatMovedWithVaryingField(t *testing.T) {
	c, err := Compile(Rules{})
	if err != nil {
		t.Fatal(err)
	}
	sig := 0
	page := func(price3 int, ids ...int) Response {
		var items []string
		for _, id := range ids {
			sig++
			price := id * 10
			if id == 3 {
				price = price3
			}
			items = append(items, fmt.Sprintf(`{"id":%d,"price":%d,"img":"/i/%d.png?sig=%d"}`, id, price, id, sig))
		}
		return jsonResp(200, `{"items":[`+strings.Join(items, ",")+`]}`)
	}
	n := NewNoise()
	learn := func(a, b Response) { n.Learn(c.CompareWithNoise(a, b, n)) }
	learn(page(30, 3, 2, 1), page(30, 3, 2, 1)) // the URLs vary
	learn(page(30, 3, 2, 1), page(30, 3, 2, 1))
	learn(page(30, 3, 2, 1), page(30, 4, 3, 2)) // an order came in meanwhile
	learn(page(30, 4, 3, 2), page(30, 5, 4, 3))
	legacy, newer := page(30, 5, 4, 3), page(33, 5, 4, 3)
	got, v := Judge(legacy, newer, c.CompareWithNoise(legacy, newer, n), n)
	if v != Diff {
		t.Errorf("learned %v; verdict %s, want diff\n%s", n.Paths(), v, formatDiffs(got))
	}
	for _, d := range got {
		if d.Path == "$.items[2].price" && d.Noise {
			t.Errorf("the price change is marked noise (learned %v)\n%s", n.Paths(), formatDiffs(got))
		}
	}
}

// TestNoise_onlyNoiseIsNoiseOnly: two answers that differ only where
// noise was learned are noise-only, also when the elements of a list
// are alike but for that noise (they are not a reordering); a list that
// really was reordered still differs.
func TestNoise_onlyNoiseIsNoiseOnly(t *testing.T) {
	tests := []struct {
		name             string
		sample1, sample2 Response // two answers of the same side
		legacy, new      Response // then compared
		wantVerdict      Verdict
		wantDiffs        string
	}{
		{
			name:    "a list of live prices",
			sample1: jsonResp(200, `{"prices":[10.5,11.2]}`), sample2: jsonResp(200, `{"prices":[10.6,11.3]}`),
			legacy: jsonResp(200, `{"prices":[10.7,11.4]}`), new: jsonResp(200, `{"prices":[10.8,11.5]}`),
			wantVerdict: NoiseOnly,
			wantDiffs:   "changed $.prices[0] 10.7 10.8 noise\nchanged $.prices[1] 11.4 11.5 noise\n",
		},
		{
			name:    "alike elements with a signed URL each",
			sample1: jsonResp(200, `{"items":[{"sku":"A","img":"s1"},{"sku":"A","img":"s2"}]}`), sample2: jsonResp(200, `{"items":[{"sku":"A","img":"s3"},{"sku":"A","img":"s4"}]}`),
			legacy: jsonResp(200, `{"items":[{"sku":"A","img":"s5"},{"sku":"A","img":"s6"}]}`), new: jsonResp(200, `{"items":[{"sku":"A","img":"s7"},{"sku":"A","img":"s8"}]}`),
			wantVerdict: NoiseOnly,
			wantDiffs:   "changed $.items[0].img \"s5\" \"s7\" noise\nchanged $.items[1].img \"s6\" \"s8\" noise\n",
		},
		{
			name:    "a list really reordered",
			sample1: jsonResp(200, `{"items":[{"sku":"A","img":"s1"},{"sku":"B","img":"s2"}]}`), sample2: jsonResp(200, `{"items":[{"sku":"A","img":"s3"},{"sku":"B","img":"s4"}]}`),
			legacy: jsonResp(200, `{"items":[{"sku":"A","img":"s5"},{"sku":"B","img":"s6"}]}`), new: jsonResp(200, `{"items":[{"sku":"B","img":"s7"},{"sku":"A","img":"s8"}]}`),
			wantVerdict: Diff,
			wantDiffs:   "order $.items [{\"img\":\"s5\",\"sku\":\"A\"},{\"img\":\"s6\",\"sku\":\"B\"}] [{\"img\":\"s7\",\"sku\":\"B\"},{\"img\":\"s8\",\"sku\":\"A\"}]\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Compile(Rules{})
			if err != nil {
				t.Fatal(err)
			}
			n := NewNoise()
			for range MinSamples {
				n.Learn(c.CompareWithNoise(tt.sample1, tt.sample2, n))
			}
			got, v := Judge(tt.legacy, tt.new, c.CompareWithNoise(tt.legacy, tt.new, n), n)
			if v != tt.wantVerdict {
				t.Errorf("learned %v; verdict %s, want %s\n%s", n.Paths(), v, tt.wantVerdict, formatDiffs(got))
			}
			if s := formatDiffs(got); s != tt.wantDiffs {
				t.Errorf("differences:\n%s\nwant:\n%s", s, tt.wantDiffs)
			}
		})
	}
}

// TestNoise_oneSampleIsNotEnough_textLine: as for a JSON field, a word of
// a text line that changed between the two answers of a single sample
// (a total updated meanwhile) is not noise because another word of that
// line (a request id) varies in every sample: each word needs samples of
// its own.
func TestNoise_oneSampleIsNotEnough_textLine(t *testing.T) {
	c, err := Compile(Rules{})
	if err != nil {
		t.Fatal(err)
	}
	n := NewNoise()
	n.Learn(c.Compare(textResp("order=7 total=100 req=a\n"), textResp("order=7 total=120 req=b\n")))
	n.Learn(c.Compare(textResp("order=8 total=50 req=c\n"), textResp("order=8 total=50 req=d\n")))
	legacy, newer := textResp("order=9 total=10 req=e\n"), textResp("order=9 total=11 req=f\n")
	got, v := Judge(legacy, newer, c.Compare(legacy, newer), n)
	if v != Diff {
		t.Errorf("learned %v; verdict %s, want diff\n%s", n.Paths(), v, formatDiffs(got))
	}
	if got, want := n.Paths(), []string{"body:L1 tokens 9"}; !slices.Equal(got, want) {
		t.Errorf("Paths() = %v, want %v", got, want)
	}
	legacy, newer = textResp("order=9 total=10 req=e\n"), textResp("order=9 total=10 req=f\n")
	if got, v := Judge(legacy, newer, c.Compare(legacy, newer), n); v != NoiseOnly {
		t.Errorf("request id only: verdict %s, want noise-only\n%s", v, formatDiffs(got))
	}
}

// TestNoise_oneOddSampleDoesNotRaiseWhatCameOrWent: a feed gains one
// entry at a time between two answers, and once legacy answered it empty
// (a cache that was cold). That one sample does not make four entries
// going noise: a new side that answers the feed empty still differs,
// while one entry more or less is noise.
func TestNoise_oneOddSampleDoesNotRaiseWhatCameOrWent(t *testing.T) {
	c, err := Compile(Rules{})
	if err != nil {
		t.Fatal(err)
	}
	n := NewNoise()
	learn := func(a, b string) { n.Learn(c.CompareWithNoise(jsonResp(200, a), jsonResp(200, b), n)) }
	learn(`{"feed":[{"id":2},{"id":1}]}`, `{"feed":[{"id":3},{"id":2},{"id":1}]}`)
	learn(`{"feed":[{"id":3},{"id":2},{"id":1}]}`, `{"feed":[{"id":4},{"id":3},{"id":2},{"id":1}]}`)
	learn(`{"feed":[{"id":4},{"id":3},{"id":2},{"id":1}]}`, `{"feed":[]}`)
	legacy := jsonResp(200, `{"feed":[{"id":4},{"id":3},{"id":2},{"id":1}]}`)
	for _, tt := range []struct {
		new  string
		want Verdict
	}{
		{`{"feed":[]}`, Diff},
		{`{"feed":[{"id":3},{"id":2},{"id":1}]}`, NoiseOnly},
	} {
		newer := jsonResp(200, tt.new)
		if got, v := Judge(legacy, newer, c.CompareWithNoise(legacy, newer, n), n); v != tt.want {
			t.Errorf("new %s: learned %v; verdict %s, want %s\n%s", tt.new, n.Paths(), v, tt.want, formatDiffs(got))
		}
	}
}

// TestNoise_oneOddSampleDoesNotAddAType: a coupon is null or an object in
// legacy's answers, and once it was a string. That one sample does not
// make a string coupon noise: a new side that always sends one differs.
func TestNoise_oneOddSampleDoesNotAddAType(t *testing.T) {
	c, err := Compile(Rules{})
	if err != nil {
		t.Fatal(err)
	}
	n := NewNoise()
	learn := func(a, b string) { n.Learn(c.CompareWithNoise(jsonResp(200, a), jsonResp(200, b), n)) }
	learn(`{"coupon":{"code":"X"}}`, `{"coupon":null}`)
	learn(`{"coupon":null}`, `{"coupon":{"code":"Y"}}`)
	learn(`{"coupon":{"code":"X"}}`, `{"coupon":"X"}`)
	legacy := jsonResp(200, `{"coupon":{"code":"X"}}`)
	for _, tt := range []struct {
		new  string
		want Verdict
	}{
		{`{"coupon":"X"}`, Diff},
		{`{"coupon":null}`, NoiseOnly},
	} {
		newer := jsonResp(200, tt.new)
		if got, v := Judge(legacy, newer, c.CompareWithNoise(legacy, newer, n), n); v != tt.want {
			t.Errorf("new %s: learned %v; verdict %s, want %s\n%s", tt.new, n.Paths(), v, tt.want, formatDiffs(got))
		}
	}
}

// TestNoise_textLineKnownByItsTemplate: noise learned for line 2 (a
// footer whose time varies) does not cover another line that a page
// with one line more above brings to number 2, though it has as many
// tokens and differs only where the footer's time did: "total 15 at
// 10:31:22" against "total 15 at 10:31:29" is a real difference. A word
// that differs between samples but not within one (the product name on a
// product page) is not part of the template, so the footer of another
// product's page is still noise.
func TestNoise_textLineKnownByItsTemplate(t *testing.T) {
	c, err := Compile(Rules{})
	if err != nil {
		t.Fatal(err)
	}
	n := NewNoise()
	page := func(product, at string) Response {
		return textResp("product " + product + "\nserved " + product + " at 10:31:" + at + "\n")
	}
	n.Learn(c.Compare(page("tea", "01"), page("tea", "02")))
	n.Learn(c.Compare(page("cup", "03"), page("cup", "04")))
	n.Learn(c.Compare(page("pot", "05"), page("pot", "07")))
	if got, want := n.Paths(), []string{"body:L2 tokens 8"}; !slices.Equal(got, want) {
		t.Fatalf("Paths() = %v, want %v", got, want)
	}
	legacy, newer := page("jar", "11"), page("jar", "12")
	if got, v := Judge(legacy, newer, c.Compare(legacy, newer), n); v != NoiseOnly {
		t.Errorf("another product's footer: verdict %s, want noise-only\n%s", v, formatDiffs(got))
	}
	shifted := func(at string) Response {
		return textResp("product jar\ntotal 15 at 10:31:" + at + "\nserved jar at 10:31:40\n")
	}
	legacy, newer = shifted("22"), shifted("29")
	got, v := Judge(legacy, newer, c.Compare(legacy, newer), n)
	if v != Diff {
		t.Errorf("a line moved onto the footer's number: verdict %s, want diff\n%s", v, formatDiffs(got))
	}
}
