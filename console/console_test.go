package console

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/webfarm/farm/farm/events"
	"github.com/webfarm/farm/farm/view"
)

type fakeFarm struct {
	mu    sync.Mutex
	acted []string
}

func (f *fakeFarm) Status(context.Context, bool) Status {
	return Status{Buckets: 4096, Self: "web1", Quorum: true, TableVersion: "v1",
		Nodes: []NodeStatus{{Name: "web1", ID: 1, State: "up", Buckets: 4096, Share: 1}}}
}

func (f *fakeFarm) Table() Table {
	return Table{Buckets: 4096, Version: "v1", Owners: make([]byte, 4096), Names: map[string]string{"1": "web1"}}
}

func (f *fakeFarm) Act(_ context.Context, node, action string) error {
	if node != "web1" {
		return ErrNoSuchNode
	}
	f.mu.Lock()
	f.acted = append(f.acted, node+":"+action)
	f.mu.Unlock()
	return nil
}

func (f *fakeFarm) Events(EventQuery) []events.Event {
	return []events.Event{{Seq: 1, Node: "web1", What: "node.up"}}
}

func (f *fakeFarm) WhatIf(c view.Change) (view.WhatIf, error) {
	return view.WhatIf{Change: c, Moved: 10}, nil
}

func (f *fakeFarm) actions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.acted...)
}

const testPassword = "correct horse"

type testServer struct {
	s     *Server
	farm  *fakeFarm
	token string
	dir   string
}

func newTestServer(t *testing.T, password string, opt Options) *testServer {
	t.Helper()
	ts := &testServer{farm: &fakeFarm{}, dir: t.TempDir()}
	if password != "" {
		h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		opt.PasswordFile = filepath.Join(ts.dir, "pass")
		if err := os.WriteFile(opt.PasswordFile, h, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	opt.StateDir = ts.dir
	opt.Listen = "127.0.0.1:0"
	s, err := New(opt, ts.farm, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ts.s = s
	b, err := os.ReadFile(filepath.Join(ts.dir, TokenFile))
	if err != nil {
		t.Fatalf("no token file: %v", err)
	}
	ts.token = strings.TrimSpace(string(b))
	return ts
}

// do runs one request through the handler from remote.
func (ts *testServer) do(t *testing.T, r *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	if r.RemoteAddr == "" || r.RemoteAddr == "192.0.2.1:1234" {
		r.RemoteAddr = "127.0.0.1:4000"
	}
	w := httptest.NewRecorder()
	ts.s.Handler().ServeHTTP(w, r)
	return w
}

func (ts *testServer) login(t *testing.T, password string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("POST", "/login", strings.NewReader(url.Values{"password": {password}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return ts.do(t, r)
}

func sessionCookie(w *httptest.ResponseRecorder) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == SessionCookie && c.Value != "" {
			return c
		}
	}
	return nil
}

// Nothing answers without a session or the token, from loopback too.
func TestNothingWithoutAuth(t *testing.T) {
	ts := newTestServer(t, testPassword, Options{Metrics: http.NotFoundHandler()})
	for _, tc := range []struct{ method, path string }{
		{"GET", "/api/v1/status"}, {"GET", "/api/v1/events"}, {"GET", "/api/v1/table"}, {"GET", "/api/v1/stream"},
		{"POST", "/api/v1/nodes/web1/stop"}, {"POST", "/api/v1/farm/drain"}, {"POST", "/api/v1/plan"},
		{"GET", "/metrics"}, {"GET", "/app/app.js"}, {"POST", "/logout"},
	} {
		for _, remote := range []string{"127.0.0.1:4000", "[::1]:4000", "10.0.0.9:4000"} {
			r := httptest.NewRequest(tc.method, tc.path, nil)
			r.RemoteAddr = remote
			if w := ts.do(t, r); w.Code != http.StatusUnauthorized && !(tc.path == "/app/app.js" && w.Code == http.StatusSeeOther) {
				t.Errorf("%s %s from %s: %d, want 401", tc.method, tc.path, remote, w.Code)
			}
		}
	}
	if len(ts.farm.actions()) != 0 {
		t.Errorf("the farm acted without auth: %v", ts.farm.actions())
	}
	// The console page sends a browser to the login page; the login page and
	// its assets answer.
	if w := ts.do(t, httptest.NewRequest("GET", "/", nil)); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login" {
		t.Errorf("GET / without a session: %d %s, want 303 to /login", w.Code, w.Header().Get("Location"))
	}
	for _, p := range []string{"/login", "/static/style.css"} {
		if w := ts.do(t, httptest.NewRequest("GET", p, nil)); w.Code != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", p, w.Code)
		}
	}
}

func TestLogin(t *testing.T) {
	ts := newTestServer(t, testPassword, Options{})
	if w := ts.login(t, "wrong"); w.Code != http.StatusUnauthorized || sessionCookie(w) != nil {
		t.Fatalf("wrong password: %d, cookie %v; want 401 and no cookie", w.Code, sessionCookie(w))
	} else if !strings.Contains(w.Body.String(), "Wrong password") {
		t.Errorf("the login page does not say why: %s", w.Body.String())
	}
	w := ts.login(t, testPassword)
	c := sessionCookie(w)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/" || c == nil {
		t.Fatalf("right password: %d to %q, cookie %v; want 303 to / with a cookie", w.Code, w.Header().Get("Location"), c)
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.MaxAge <= 0 || c.Secure {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, an expiry, not Secure without TLS", c)
	}
	get := func(path string, c *http.Cookie) int {
		r := httptest.NewRequest("GET", path, nil)
		if c != nil {
			r.AddCookie(c)
		}
		return ts.do(t, r).Code
	}
	if code := get("/api/v1/status", c); code != http.StatusOK {
		t.Errorf("status with the session: %d", code)
	}
	if code := get("/", c); code != http.StatusOK {
		t.Errorf("console with the session: %d", code)
	}
	if code := get("/api/v1/status", &http.Cookie{Name: SessionCookie, Value: "forged"}); code != http.StatusUnauthorized {
		t.Errorf("forged session: %d", code)
	}
	// A session expires.
	ts.s.auth.now = func() time.Time { return time.Now().Add(SessionTTL + time.Minute) }
	if code := get("/api/v1/status", c); code != http.StatusUnauthorized {
		t.Errorf("expired session: %d, want 401", code)
	}
	ts.s.auth.now = time.Now
	// Logout ends it.
	c = sessionCookie(ts.login(t, testPassword))
	r := httptest.NewRequest("POST", "/logout", nil)
	r.AddCookie(c)
	ts.do(t, r)
	if code := get("/api/v1/status", c); code != http.StatusUnauthorized {
		t.Errorf("after logout: %d, want 401", code)
	}
}

func TestLoginRateLimit(t *testing.T) {
	ts := newTestServer(t, testPassword, Options{})
	codes := []int{}
	for range loginBurst + 2 {
		codes = append(codes, ts.login(t, "guess").Code)
	}
	last := ts.login(t, testPassword) // even the right password waits
	if last.Code != http.StatusTooManyRequests || last.Header().Get("Retry-After") == "" || sessionCookie(last) != nil {
		t.Fatalf("attempts %v then %d (Retry-After %q): want 429 with Retry-After after %d tries", codes, last.Code, last.Header().Get("Retry-After"), loginBurst)
	}
	// Another source is not limited.
	r := httptest.NewRequest("POST", "/login", strings.NewReader("password="+url.QueryEscape(testPassword)))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr = "10.0.0.7:5555"
	if w := ts.do(t, r); w.Code != http.StatusSeeOther {
		t.Errorf("another source: %d, want 303", w.Code)
	}
}

func TestToken(t *testing.T) {
	ts := newTestServer(t, "", Options{})
	fi, err := os.Stat(filepath.Join(ts.dir, TokenFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	req := func(tok string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/api/v1/nodes/web1/drain", nil)
		if tok != "" {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		return ts.do(t, r)
	}
	if w := req("nope"); w.Code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d", w.Code)
	}
	if w := req(ts.token); w.Code != http.StatusOK {
		t.Fatalf("token: %d %s", w.Code, w.Body.String())
	}
	if got := ts.farm.actions(); len(got) != 1 || got[0] != "web1:drain" {
		t.Errorf("the farm did %v, want [web1:drain]", got)
	}
	// The same token is kept across restarts.
	again := newTestServerIn(t, ts.dir)
	if string(again.s.auth.token) != ts.token {
		t.Error("a restart made a new token")
	}
	// No password file: no console login.
	if w := ts.login(t, "anything"); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "password_file") {
		t.Errorf("login without a password file: %d %s", w.Code, w.Body.String())
	}
}

func newTestServerIn(t *testing.T, dir string) *testServer {
	t.Helper()
	s, err := New(Options{Listen: "127.0.0.1:0", StateDir: dir}, &fakeFarm{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &testServer{s: s}
}

func TestTokenFileReadableByOthers(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, TokenFile), []byte("0123456789abcdef0123\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{StateDir: dir}, &fakeFarm{}, nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable token: %v, want a refusal naming chmod 600", err)
	}
}

// A cookie-authenticated state change from another origin is refused.
func TestCrossOrigin(t *testing.T) {
	ts := newTestServer(t, testPassword, Options{})
	c := sessionCookie(ts.login(t, testPassword))
	post := func(h map[string]string) int {
		r := httptest.NewRequest("POST", "http://10.0.0.11:9010/api/v1/nodes/web1/stop", nil)
		r.AddCookie(c)
		for k, v := range h {
			r.Header.Set(k, v)
		}
		return ts.do(t, r).Code
	}
	if code := post(map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}); code != http.StatusForbidden {
		t.Errorf("cross-site POST: %d, want 403", code)
	}
	if code := post(map[string]string{"Origin": "https://evil.example"}); code != http.StatusForbidden {
		t.Errorf("cross-origin POST (Origin only): %d, want 403", code)
	}
	if got := ts.farm.actions(); len(got) != 0 {
		t.Fatalf("the farm acted on a cross-origin request: %v", got)
	}
	if code := post(map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://10.0.0.11:9010"}); code != http.StatusOK {
		t.Errorf("same-origin POST: %d, want 200", code)
	}
}

func TestMetricsAccess(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "farm_up 1\n") })
	ts := newTestServer(t, "", Options{Metrics: metrics})
	if w := ts.do(t, httptest.NewRequest("GET", "/metrics", nil)); w.Code != http.StatusUnauthorized {
		t.Errorf("metrics without auth: %d", w.Code)
	}
	r := httptest.NewRequest("GET", "/metrics", nil)
	r.Header.Set("Authorization", "Bearer "+ts.token)
	if w := ts.do(t, r); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "farm_up") {
		t.Errorf("metrics with the token: %d", w.Code)
	}
	pub := newTestServer(t, "", Options{Metrics: metrics, MetricsPublic: true})
	if w := pub.do(t, httptest.NewRequest("GET", "/metrics", nil)); w.Code != http.StatusOK {
		t.Errorf("public metrics: %d", w.Code)
	}
	if w := pub.do(t, httptest.NewRequest("GET", "/api/v1/status", nil)); w.Code != http.StatusUnauthorized {
		t.Errorf("public metrics opened the API: %d", w.Code)
	}
}

func TestAPI(t *testing.T) {
	ts := newTestServer(t, "", Options{})
	call := func(method, path, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+ts.token)
		return ts.do(t, r)
	}
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/api/v1/status", "", 200},
		{"GET", "/api/v1/table", "", 200},
		{"GET", "/api/v1/events?node=web1&kind=node&after=0", "", 200},
		{"GET", "/api/v1/events?limit=x", "", 400},
		{"POST", "/api/v1/nodes/web9/stop", "", 404},
		{"POST", "/api/v1/nodes/web1/reboot", "", 404},
		{"GET", "/api/v1/nodes/web1/stop", "", 405},
		{"POST", "/api/v1/farm/stop", "", 200},
		{"POST", "/api/v1/plan", `{"node":"web1","action":"stop"}`, 200},
		{"POST", "/api/v1/plan", `{"node":"web1","bogus":1}`, 400},
		{"POST", "/api/v1/plan", `not json`, 400},
	} {
		if w := call(tc.method, tc.path, tc.body); w.Code != tc.want {
			t.Errorf("%s %s: %d, want %d: %s", tc.method, tc.path, w.Code, tc.want, w.Body.String())
		}
	}
	var st Status
	if err := json.Unmarshal(call("GET", "/api/v1/status", "").Body.Bytes(), &st); err != nil || st.Nodes[0].Name != "web1" {
		t.Errorf("status JSON: %v %+v", err, st)
	}
	var tb Table
	if err := json.Unmarshal(call("GET", "/api/v1/table", "").Body.Bytes(), &tb); err != nil || len(tb.Owners) != 4096 {
		t.Errorf("table JSON: %v, %d owners", err, len(tb.Owners))
	}
}

// The stream sends the status, the table and the events, and ends with the
// server.
func TestStream(t *testing.T) {
	ts := newTestServer(t, "", Options{})
	srv := httptest.NewServer(ts.s.Handler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/v1/stream", nil)
	req.Header.Set("Authorization", "Bearer "+ts.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && len(seen) < 3 {
		if ev, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			seen[ev] = true
		}
	}
	for _, ev := range []string{"status", "table", "events"} {
		if !seen[ev] {
			t.Errorf("no %s event in the stream (saw %v)", ev, seen)
		}
	}
}

// TestTLS serves over HTTPS with a pair farm cert would make, and marks the
// cookie Secure.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := WriteSelfSigned(certFile, keyFile, []string{"localhost", "127.0.0.1"}, false); err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, testPassword, Options{TLSCert: certFile, TLSKey: keyFile})
	srv := httptest.NewUnstartedServer(ts.s.Handler())
	srv.TLS = ts.s.tls
	srv.StartTLS()
	defer srv.Close()
	client := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, // self-signed
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.PostForm(srv.URL+"/login", url.Values{"password": {testPassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var c *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == SessionCookie {
			c = k
		}
	}
	if resp.StatusCode != http.StatusSeeOther || c == nil || !c.Secure {
		t.Fatalf("login over TLS: %d, cookie %+v; want 303 and a Secure cookie", resp.StatusCode, c)
	}
	if err := WriteSelfSigned(certFile, keyFile, nil, false); err == nil {
		t.Error("farm cert overwrote an existing pair without --force")
	}
}
