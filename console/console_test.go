package console

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

type fakeFarm struct{ acted []string }

func (f *fakeFarm) Status() Status {
	return Status{Buckets: 4096, Self: "web1", Nodes: []NodeStatus{{Name: "web1", ID: 1, State: "up", Buckets: 4096, Share: 1}}}
}

func (f *fakeFarm) Act(_ context.Context, node, action string) error {
	if node != "web1" {
		return ErrNoSuchNode
	}
	f.acted = append(f.acted, node+":"+action)
	return nil
}

func (f *fakeFarm) Events(int) any { return []string{} }

func newTestServer(t *testing.T, password string) (*Server, *fakeFarm) {
	t.Helper()
	f := &fakeFarm{}
	pf := ""
	if password != "" {
		h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		pf = filepath.Join(t.TempDir(), "pass")
		if err := os.WriteFile(pf, h, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := New("127.0.0.1:0", pf, f, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s, f
}

func TestAccess(t *testing.T) {
	tests := []struct {
		name     string
		password string
		remote   string
		method   string
		path     string
		user     string
		pass     string
		want     int
	}{
		{"loopback status", "", "127.0.0.1:4000", "GET", "/api/v1/status", "", "", 200},
		{"loopback v6 action", "", "[::1]:4000", "POST", "/api/v1/nodes/web1/drain", "", "", 200},
		{"remote without password file", "", "10.0.0.9:4000", "GET", "/api/v1/status", "", "", 403},
		{"remote action without password file", "", "10.0.0.9:4000", "POST", "/api/v1/nodes/web1/stop", "", "", 403},
		{"remote no credentials", "s3cret", "10.0.0.9:4000", "POST", "/api/v1/nodes/web1/stop", "", "", 401},
		{"remote wrong password", "s3cret", "10.0.0.9:4000", "POST", "/api/v1/nodes/web1/stop", "admin", "nope", 401},
		{"remote right password", "s3cret", "10.0.0.9:4000", "POST", "/api/v1/nodes/web1/stop", "admin", "s3cret", 200},
		{"unknown node", "", "127.0.0.1:4000", "POST", "/api/v1/nodes/web9/stop", "", "", 404},
		{"unknown action", "", "127.0.0.1:4000", "POST", "/api/v1/nodes/web1/reboot", "", "", 404},
		{"action needs POST", "", "127.0.0.1:4000", "GET", "/api/v1/nodes/web1/stop", "", "", 405},
		{"bad limit", "", "127.0.0.1:4000", "GET", "/api/v1/events?limit=x", "", "", 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, f := newTestServer(t, tc.password)
			r := httptest.NewRequest(tc.method, tc.path, nil)
			r.RemoteAddr = tc.remote
			if tc.user != "" {
				r.SetBasicAuth(tc.user, tc.pass)
			}
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Fatalf("got %d, want %d: %s", w.Code, tc.want, w.Body.String())
			}
			// The farm saw exactly the action that was allowed, or none.
			var want []string
			if tc.method == "POST" && tc.want == 200 {
				parts := strings.Split(tc.path, "/")
				want = []string{parts[4] + ":" + parts[5]}
			}
			if strings.Join(f.acted, ",") != strings.Join(want, ",") {
				t.Errorf("farm acted %v, want %v", f.acted, want)
			}
		})
	}
}

func TestStatusJSON(t *testing.T) {
	s, _ := newTestServer(t, "")
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`"nodes"`, `"name": "web1"`, `"state": "up"`, `"buckets": 4096`, `"share": 1`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("status lacks %s: %s", want, b)
		}
	}
}

func TestBadPasswordFile(t *testing.T) {
	pf := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(pf, []byte("plaintext"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New("127.0.0.1:0", pf, &fakeFarm{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "not a bcrypt hash") {
		t.Fatalf("want bcrypt error, got %v", err)
	}
}
