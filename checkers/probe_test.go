package checkers

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// completeSpec is a Spec as config.CheckerSpecs makes it, every field set,
// with a timeout generous enough for a loaded test machine. Tests change
// the fields they are about.
func completeSpec(typ, target string) Spec {
	s := Spec{Name: typ, Type: typ, Target: target, Interval: 20 * time.Second, Timeout: 10 * time.Second,
		Fall: DefaultFall, Rise: DefaultRise, Action: ActionNone}
	if typ == TypeHTTP {
		s.Expect = DefaultExpect
	}
	return s
}

// probeOnce builds the probe for s and runs it once with a generous deadline.
func probeOnce(t *testing.T, s Spec) error {
	t.Helper()
	p, err := NewProbe(s, nil)
	if err != nil {
		t.Fatalf("NewProbe(%+v): %v", s, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return p.Check(ctx)
}

// wantResult fails the test unless err matches wantErr ("" = pass).
func wantResult(t *testing.T, err error, wantErr string) {
	t.Helper()
	switch {
	case wantErr == "" && err != nil:
		t.Fatalf("Check = %v, want pass", err)
	case wantErr != "" && err == nil:
		t.Fatalf("Check passed, want an error containing %q", wantErr)
	case wantErr != "" && !strings.Contains(err.Error(), wantErr):
		t.Fatalf("Check = %v, want an error containing %q", err, wantErr)
	}
}

func TestTCPProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	tests := []struct {
		name, target, wantErr string
	}{
		{"listening", ln.Addr().String(), ""},
		{"refused", closedAddr, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantResult(t, probeOnce(t, completeSpec(TypeTCP, tt.target)), tt.wantErr)
		})
	}
}

func TestHTTPProbe(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello world") })
	mux.HandleFunc("/down", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/vhost", func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "shop.example" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, "shop")
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", MaxBody+10)))
		w.Write([]byte("NEEDLE"))
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(20 * time.Second):
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	tlsSrv := httptest.NewTLSServer(mux)
	t.Cleanup(tlsSrv.Close)

	tests := []struct {
		name    string
		spec    Spec
		wantErr string
	}{
		{"200 by default", Spec{Target: srv.URL + "/ok"}, ""},
		{"body found", Spec{Target: srv.URL + "/ok", Body: "world"}, ""},
		{"body missing", Spec{Target: srv.URL + "/ok", Body: "goodbye"}, `body does not contain "goodbye"`},
		{"bad status", Spec{Target: srv.URL + "/down"}, "status 503, want 200"},
		{"expected status", Spec{Target: srv.URL + "/down", Expect: 503}, ""},
		{"redirect not followed", Spec{Target: srv.URL + "/moved"}, "status 302, want 200"},
		{"redirect expected", Spec{Target: srv.URL + "/moved", Expect: 302}, ""},
		{"host header", Spec{Target: srv.URL + "/vhost", Host: "shop.example", Body: "shop"}, ""},
		{"wrong host", Spec{Target: srv.URL + "/vhost"}, "status 404"},
		{"body beyond the cap", Spec{Target: srv.URL + "/big", Body: "NEEDLE"}, "does not contain"},
		{"refused", Spec{Target: "http://127.0.0.1:1/"}, "connection refused"},
		{"timeout", Spec{Target: srv.URL + "/slow", Timeout: 200 * time.Millisecond}, "timed out after 200ms"},
		{"https untrusted", Spec{Target: tlsSrv.URL + "/ok"}, "certificate"},
		{"https skip verify", Spec{Target: tlsSrv.URL + "/ok", SkipVerify: true, Body: "hello"}, ""},
		{"https skip verify with host", Spec{Target: tlsSrv.URL + "/vhost", SkipVerify: true, Host: "shop.example"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The table gives the target and what differs from a complete spec.
			s := completeSpec(TypeHTTP, tt.spec.Target)
			s.Body, s.Host, s.SkipVerify = tt.spec.Body, tt.spec.Host, tt.spec.SkipVerify
			if tt.spec.Expect != 0 {
				s.Expect = tt.spec.Expect
			}
			if tt.spec.Timeout != 0 {
				s.Timeout = tt.spec.Timeout
			}
			wantResult(t, probeOnce(t, s), tt.wantErr)
		})
	}
}

func TestScriptProbe(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("uses /bin/sh scripts")
	}
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		spec    Spec
		wantErr string
	}{
		{"pass with environment", Spec{Name: "envcheck", Target: write("env.sh",
			`[ "$FARM_ACTION" = check ] && [ "$FARM_CHECKER" = envcheck ] && [ "$FARM_NODE" = web1 ]`)}, ""},
		{"fail says why", Spec{Target: write("fail.sh", "echo step one\necho 'database unreachable'\nexit 2")}, "exited with code 2: database unreachable"},
		{"hang times out", Spec{Target: write("hang.sh", "exec sleep 300"), Timeout: 300 * time.Millisecond}, "timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := completeSpec(TypeScript, tt.spec.Target)
			if tt.spec.Name != "" {
				s.Name = tt.spec.Name
			}
			if tt.spec.Timeout != 0 {
				s.Timeout = tt.spec.Timeout
			}
			p, err := NewProbe(s, []string{"FARM_NODE=web1", "FARM_VIP=10.0.0.100"})
			if err != nil {
				t.Fatal(err)
			}
			wantResult(t, p.Check(context.Background()), tt.wantErr)
		})
	}
}

func TestInterfaceAndVIPProbes(t *testing.T) {
	lo := loopbackName(t)
	tests := []struct {
		name    string
		spec    Spec
		wantErr string
	}{
		{"loopback up", completeSpec(TypeInterface, lo), ""},
		{"no such interface", completeSpec(TypeInterface, "nosuch0"), `interface "nosuch0"`},
		{"vip configured", completeSpec(TypeVIP, "127.0.0.1"), ""},
		{"vip not configured", completeSpec(TypeVIP, "198.51.100.77"), "198.51.100.77 is not configured"},
	}
	// The probe looks for Target; VIP is only informational.
	other := completeSpec(TypeVIP, "127.0.0.1")
	other.VIP = "198.51.100.77"
	tests = append(tests, struct {
		name    string
		spec    Spec
		wantErr string
	}{"target, not VIP", other, ""})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantResult(t, probeOnce(t, tt.spec), tt.wantErr)
		})
	}
}

func loopbackName(t *testing.T) string {
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 {
			return i.Name
		}
	}
	t.Skip("no loopback interface")
	return ""
}

// blockingProbe waits for its context to end.
type blockingProbe struct{}

func (blockingProbe) Check(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }

func TestTimedProbe(t *testing.T) {
	err := timedProbe{p: blockingProbe{}, timeout: 50 * time.Millisecond}.Check(context.Background())
	wantResult(t, err, "timed out after 50ms")
	// A parent cancellation is not reported as the checker's timeout.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = timedProbe{p: blockingProbe{}, timeout: time.Hour}.Check(ctx)
	if err == nil || strings.Contains(err.Error(), "timed out after") {
		t.Fatalf("Check on a cancelled context = %v", err)
	}
}

// TestNewProbeRejects covers the only errors left to NewProbe: specs no
// config would make (the config validates every field).
func TestNewProbeRejects(t *testing.T) {
	bad := completeSpec("ping", "x")
	badVIP := completeSpec(TypeVIP, "10.0.0.300")
	for _, tt := range []struct {
		name    string
		spec    Spec
		wantErr string
	}{
		{"unknown type", bad, `unknown type "ping"`},
		{"empty type", completeSpec("", "x"), `unknown type ""`},
		{"vip target not an address", badVIP, `vip target "10.0.0.300" is not an IP address`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewProbe(tt.spec, nil)
			wantResult(t, err, tt.wantErr)
		})
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
