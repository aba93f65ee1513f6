package console

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/net/http/httpguts"

	"github.com/webfarm/farm/farm/events"
	"github.com/webfarm/farm/farm/view"
)

// FuzzHandler drives the API and console handler with fuzzed requests
// (method, path, Cookie, Authorization, Origin, Sec-Fetch-Site,
// Content-Type, body), read by net/http's own request parser as a server
// would, against a fake farm. Whatever the request:
//   - no panic;
//   - no 5xx but a 502 when the farm failed an action;
//   - without the API token or a live session in the request, nothing but
//     the login page and the static assets answers 2xx, and the farm is
//     never asked to act (the contract: every API call and /metrics needs a
//     session or the token, from loopback too);
//   - a state change (any method but GET, HEAD and OPTIONS) that a browser
//     marks as cross-origin (Sec-Fetch-Site, or an Origin that is not the
//     Host) neither answers 2xx nor acts;
//   - only POST acts, and only on the farm's node and action routes;
//   - every answer carries the security headers.
func FuzzHandler(f *testing.F) {
	// sel picks the credentials: bits 0-1 Authorization (none, the token,
	// the fuzzed value, the token with spaces), bits 2-3 Cookie (none, a
	// live session, a forged one, the fuzzed value), bit 4 the source
	// (loopback or not).
	const (
		authToken  = 1
		authFuzz   = 2
		cookieLive = 1 << 2
		cookieFuzz = 3 << 2
	)
	add := func(method, target string, sel uint8, cookie, authz, origin, site, ctype, body string) {
		f.Add(method, target, sel, cookie, authz, origin, site, ctype, []byte(body))
	}
	add("GET", "/api/v1/status", authToken, "", "", "", "", "", "")
	add("GET", "/api/v1/status?detail=0", cookieLive, "", "", "", "", "", "")
	add("GET", "/api/v1/table", 0, "", "", "", "", "", "")
	add("GET", "/api/v1/events?after=1&limit=5&node=web1&kind=node", authToken, "", "", "", "", "", "")
	add("GET", "/api/v1/events?limit=0", authToken, "", "", "", "", "", "")
	add("GET", "/api/v1/stream?after=0", cookieLive, "", "", "", "same-origin", "", "")
	add("POST", "/api/v1/nodes/web1/drain", authToken, "", "", "", "", "", "")
	add("POST", "/api/v1/nodes/web2/stop", authToken, "", "", "", "", "", "")
	add("POST", "/api/v1/nodes/web9/stop", cookieLive, "", "", "http://farm.test", "", "", "")
	add("POST", "/api/v1/nodes/web1/reboot", authToken, "", "", "", "", "", "")
	add("POST", "/api/v1/nodes/web1/stop", cookieLive, "", "", "https://evil.example", "cross-site", "", "")
	add("POST", "/api/v1/nodes/web1/stop", cookieLive, "", "", "https://evil.example", "", "", "")
	add("POST", "/api/v1/nodes/web1/stop", 0, "", "", "", "", "", "")
	add("POST", "/api/v1/nodes/web1/stop", authFuzz, "", "Bearer not-the-token", "", "", "", "")
	add("POST", "/api/v1/nodes/web1/stop", cookieFuzz, "farm_session=AAAA; other=1", "", "", "", "", "")
	add("POST", "/api/v1/farm/drain", authToken|cookieLive, "", "", "", "none", "", "")
	add("POST", "/api/v1/plan", authToken, "", "", "", "", "application/json", `{"node":"web2","action":"stop"}`)
	add("POST", "/api/v1/plan", authToken, "", "", "", "", "application/json", `{"node":"new","action":"add","id":7,"weight":50}`)
	add("POST", "/api/v1/plan", authToken, "", "", "", "", "application/json", `{"node":"web2","action":"stop","x":1}`)
	add("POST", "/login", 0, "", "", "", "", "application/x-www-form-urlencoded", "password=correct+horse")
	add("POST", "/login", 0, "", "", "", "", "application/x-www-form-urlencoded", "password=wrong")
	add("POST", "/login", 0, "", "", "http://farm.test", "same-origin", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\ncorrect horse\r\n--x--\r\n")
	add("POST", "/logout", cookieLive, "", "", "", "", "", "")
	add("GET", "/login", cookieLive, "", "", "", "", "", "")
	add("GET", "/", 0, "", "", "", "", "", "")
	add("GET", "/app/app.js", cookieLive, "", "", "", "", "", "")
	add("GET", "/app/../login.html", cookieLive, "", "", "", "", "", "")
	add("GET", "/static/style.css", 0, "", "", "", "", "", "")
	add("GET", "/static/../app/app.js", 0, "", "", "", "", "", "")
	add("HEAD", "/metrics", authToken|1<<4, "", "", "", "", "", "")
	add("GET", "/metrics", 1<<4, "", "", "", "", "", "")
	add("OPTIONS", "*", 0, "", "", "", "", "", "")
	add("DELETE", "/api/v1/nodes/web1/stop", authToken, "", "", "", "", "", "")
	add("GET", "http://other.example/api/v1/status", 0, "", "", "", "", "", "")

	fx := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, method, target string, sel uint8, cookie, authz, origin, site, ctype string, body []byte) {
		var raw bytes.Buffer
		raw.WriteString(method + " " + target + " HTTP/1.1\r\nHost: farm.test\r\n")
		switch sel & 3 {
		case 1:
			raw.WriteString("Authorization: Bearer " + fx.token + "\r\n")
		case 2:
			raw.WriteString("Authorization: " + authz + "\r\n")
		case 3:
			raw.WriteString("Authorization: Bearer  " + fx.token + " \r\n")
		}
		switch sel >> 2 & 3 {
		case 1:
			raw.WriteString("Cookie: " + SessionCookie + "=" + fx.session + "\r\n")
		case 2:
			raw.WriteString("Cookie: " + SessionCookie + "=forged\r\n")
		case 3:
			raw.WriteString("Cookie: " + cookie + "\r\n")
		}
		for _, h := range [][2]string{{"Origin", origin}, {"Sec-Fetch-Site", site}, {"Content-Type", ctype}} {
			if h[1] != "" {
				raw.WriteString(h[0] + ": " + h[1] + "\r\n")
			}
		}
		raw.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
		raw.Write(body)
		rawText := raw.String()
		r, err := http.ReadRequest(bufio.NewReader(&raw))
		if err != nil || !serverAccepts(r) {
			return // the server answers 400 before any handler
		}
		r.RemoteAddr = "127.0.0.1:4000"
		if sel&(1<<4) != 0 {
			r.RemoteAddr = "192.0.2.9:4000"
		}
		authed := strings.Contains(rawText, fx.token) || strings.Contains(rawText, fx.session)

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		r = r.WithContext(ctx)
		w := &flushCanceler{ResponseRecorder: httptest.NewRecorder(), cancel: cancel}
		fx.reset()
		fx.handler.ServeHTTP(w, r)
		code := w.Code
		acts, failed := fx.farm.done()
		p := r.URL.Path

		if code >= 500 && !(code == http.StatusBadGateway && failed) {
			t.Fatalf("%s %s answered %d (farm failed an action: %v): %s", r.Method, target, code, failed, w.Body.String())
		}
		ok := code >= 200 && code < 300
		if !authed {
			public := (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
				(p == "/login" || strings.HasPrefix(path.Clean(p), "/static/") && strings.HasPrefix(p, "/static/"))
			if ok && !public {
				t.Fatalf("%s %s answered %d without the token or a session:\n%s", r.Method, target, code, rawText)
			}
			if len(acts) > 0 {
				t.Fatalf("%s %s made the farm act (%v) without the token or a session", r.Method, target, acts)
			}
		}
		if crossOrigin(r) {
			if ok || len(acts) > 0 {
				t.Fatalf("cross-origin %s %s answered %d, acts %v:\n%s", r.Method, target, code, acts, rawText)
			}
		}
		if len(acts) > 0 && (r.Method != http.MethodPost || !strings.HasPrefix(p, "/api/v1/nodes/") && !strings.HasPrefix(p, "/api/v1/farm/")) {
			t.Fatalf("%s %s made the farm act: %v", r.Method, target, acts)
		}
		for _, h := range []string{"X-Frame-Options", "X-Content-Type-Options", "Content-Security-Policy"} {
			if w.Header().Get(h) == "" {
				t.Fatalf("%s %s answered %d without %s", r.Method, target, code, h)
			}
		}
	})
}

// serverAccepts applies the checks net/http's server makes on a request it
// read, before calling any handler (it answers 400 otherwise).
func serverAccepts(r *http.Request) bool {
	if r.ProtoMajor != 1 || r.ProtoMinor > 1 {
		return false
	}
	if !httpguts.ValidHostHeader(r.Host) { // ReadRequest moved the header there
		return false
	}
	for k, vv := range r.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return false
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return false
			}
		}
	}
	return true
}

// crossOrigin reports a state change a browser marks as coming from another
// origin: Sec-Fetch-Site other than same-origin or none, or, without it, an
// Origin whose host is not the request's Host.
func crossOrigin(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	switch s := r.Header.Get("Sec-Fetch-Site"); s {
	case "same-origin", "none":
		return false
	case "":
		o := r.Header.Get("Origin")
		if o == "" {
			return false
		}
		u, err := url.Parse(o)
		return err != nil || u.Host != r.Host
	default:
		return true
	}
}

// flushCanceler ends the request at its first flush, so that the event
// stream sends one round and returns.
type flushCanceler struct {
	*httptest.ResponseRecorder
	cancel context.CancelFunc
}

func (w *flushCanceler) Flush() {
	w.ResponseRecorder.Flush()
	w.cancel()
}

type fuzzServer struct {
	s       *Server
	handler http.Handler
	farm    *fuzzFarm
	token   string
	session string
}

func newFuzzServer(tb testing.TB) *fuzzServer {
	tb.Helper()
	dir := tb.TempDir()
	h, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		tb.Fatal(err)
	}
	pass := filepath.Join(dir, "pass")
	if err := os.WriteFile(pass, h, 0o600); err != nil {
		tb.Fatal(err)
	}
	fx := &fuzzServer{farm: &fuzzFarm{}}
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "farm_up 1\n") })
	fx.s, err = New(Options{Listen: "127.0.0.1:0", PasswordFile: pass, StateDir: dir, Metrics: metrics}, fx.farm, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, TokenFile))
	if err != nil {
		tb.Fatal(err)
	}
	fx.token = strings.TrimSpace(string(b))
	if fx.session, _, err = fx.s.auth.newSession(); err != nil {
		tb.Fatal(err)
	}
	fx.handler = fx.s.Handler()
	return fx
}

// reset brings back the live session (a fuzzed logout ends it) and clears
// the login rate limit, so every input reaches the code behind them.
func (fx *fuzzServer) reset() {
	a := fx.s.auth
	a.mu.Lock()
	a.sessions[fx.session] = time.Now().Add(time.Hour)
	a.limiters = map[string]*limiter{}
	a.mu.Unlock()
	fx.farm.mu.Lock()
	fx.farm.acts, fx.farm.failed = nil, false
	fx.farm.mu.Unlock()
}

// fuzzFarm is a farm of web1 (acts), web2 (its actions fail: 502) and web3
// (down), whose what-if is the real computation.
type fuzzFarm struct {
	mu     sync.Mutex
	acts   []string
	failed bool
}

var fuzzNodes = []view.Node{
	{Name: "web1", ID: 1, Weight: 100, State: view.StateUp, Alive: true},
	{Name: "web2", ID: 2, Weight: 100, State: view.StateUp, Alive: true},
	{Name: "web3", ID: 3, Weight: 100, State: view.StateDown},
}

func (f *fuzzFarm) Status(context.Context, bool) Status {
	return Status{Buckets: 4096, Self: "web1", Quorum: true, Known: 3, Healthy: 2, TableVersion: "v1", Time: time.Unix(0, 0),
		Nodes: []NodeStatus{
			{Name: "web1", ID: 1, State: "up", Buckets: 2048, Share: 0.5, Self: true, Detail: &NodeDetail{Flows: 3, Serving: true}},
			{Name: "web2", ID: 2, State: "up", Buckets: 2048, Share: 0.5},
			{Name: "web3", ID: 3, State: "down"},
		}}
}

func (f *fuzzFarm) Table() Table {
	return Table{Buckets: 4096, Version: "v1", Owners: make([]byte, 4096), Names: map[string]string{"1": "web1", "2": "web2"}}
}

func (f *fuzzFarm) Act(_ context.Context, node, action string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acts = append(f.acts, node+":"+action)
	switch node {
	case "web1":
		return nil
	case "web2", "web3":
		f.failed = true
		return errors.New("node did not answer")
	}
	return ErrNoSuchNode
}

func (f *fuzzFarm) Events(q EventQuery) []events.Event {
	return []events.Event{{Seq: q.After + 1, Node: "web1", What: "node.up"}}
}

func (f *fuzzFarm) WhatIf(c view.Change) (view.WhatIf, error) {
	return view.Plan(fuzzNodes, c)
}

func (f *fuzzFarm) done() ([]string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.acts, f.failed
}
