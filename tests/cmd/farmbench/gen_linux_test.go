package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// serve answers one request on c with resp, then closes if closeAfter.
func serve(t *testing.T, c net.Conn, resps []string, closeAfter bool) {
	t.Helper()
	go func() {
		br := bufio.NewReader(c)
		for _, resp := range resps {
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if line == "\r\n" {
					break
				}
			}
			if _, err := io.WriteString(c, resp); err != nil {
				return
			}
		}
		if closeAfter {
			c.Close()
		}
	}()
}

func TestExchange(t *testing.T) {
	req := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	tests := []struct {
		name       string
		resp       string
		toEOF      bool
		wantNode   string
		wantAgain  bool
		wantErr    bool
		wantStatus int
	}{
		{name: "keep-alive", resp: "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 5\r\n\r\nweb1\n", wantNode: "web1", wantAgain: true},
		{name: "header case", resp: "HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 5\r\nConnection: Close\r\n\r\nweb2\n", wantNode: "web2"},
		{name: "to EOF", resp: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nweb3\n", toEOF: true, wantNode: "web3"},
		{name: "status", resp: "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", wantErr: true, wantStatus: 503},
		{name: "no length", resp: "HTTP/1.1 200 OK\r\n\r\nweb1\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			serve(t, b, []string{tt.resp}, true)
			_ = a.SetDeadline(time.Now().Add(5 * time.Second))
			node, again, err := exchange(a, req, make([]byte, 4096), tt.toEOF)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			var es errStatus
			if tt.wantStatus != 0 && (!errors.As(err, &es) || int(es) != tt.wantStatus) {
				t.Fatalf("err = %v, want status %d", err, tt.wantStatus)
			}
			if tt.wantErr {
				return
			}
			if string(node) != tt.wantNode || again != tt.wantAgain {
				t.Fatalf("got (%q, %v), want (%q, %v)", node, again, tt.wantNode, tt.wantAgain)
			}
		})
	}
}

// A keep-alive connection answers several requests in a row, each read
// into the same buffer.
func TestExchangeReuse(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	resp := "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nweb1\n"
	serve(t, b, []string{resp, resp, resp}, false)
	buf := make([]byte, 4096)
	for i := 0; i < 3; i++ {
		_ = a.SetDeadline(time.Now().Add(5 * time.Second))
		node, again, err := exchange(a, []byte("GET / HTTP/1.1\r\n\r\n"), buf, false)
		if err != nil || string(node) != "web1" || !again {
			t.Fatalf("request %d: (%q, %v, %v)", i, node, again, err)
		}
	}
}

func TestHistQuantile(t *testing.T) {
	h := make([]uint64, histBins)
	h[0] = 50  // 0-10 us
	h[10] = 49 // 100-110 us
	h[100] = 1 // 1000-1010 us
	if got := histQuantile(h, 0.5); got != 105 {
		t.Errorf("p50 = %v, want 105", got)
	}
	if got := histQuantile(h, 0.99); got != 1005 {
		t.Errorf("p99 = %v, want 1005", got)
	}
	if got := histQuantile(make([]uint64, histBins), 0.5); got != 0 {
		t.Errorf("empty p50 = %v", got)
	}
}

func TestWorkerOK(t *testing.T) {
	w := &worker{errs: map[string]int64{}, perNode: map[string]*int64{}, hist: make([]uint32, histBins)}
	w.ok(time.Second, []byte("web1"))
	w.ok(time.Millisecond, []byte("web1"))
	w.ok(time.Hour, []byte("web2"))
	w.fail("timeout")
	if w.reqs != 3 || w.slow != 2 || w.fails != 1 || *w.perNode["web1"] != 2 || *w.perNode["web2"] != 1 {
		t.Fatalf("worker = reqs %d slow %d fails %d per node %v", w.reqs, w.slow, w.fails, w.perNode)
	}
	if w.hist[histBins-1] != 2 || w.hist[100] != 1 {
		t.Errorf("a second and an hour belong in the last bin (200 ms and over), a millisecond in bin 100")
	}
}

func TestHAProxyConf(t *testing.T) {
	vip := netip.MustParseAddr("10.213.0.100")
	c := haproxyConf(vip, []netip.Addr{netip.MustParseAddr("10.213.0.11"), netip.MustParseAddr("10.213.0.12")}, 2)
	for _, want := range []string{"mode http", "http-reuse always", "bind 10.213.0.100:80", "server web2 10.213.0.12:80", "nbthread 2", "balance roundrobin"} {
		if !strings.Contains(c, want) {
			t.Errorf("haproxy config lacks %q:\n%s", want, c)
		}
	}
	if strings.Contains(haproxyConf(vip, nil, 0), "nbthread") {
		t.Errorf("threads 0 should leave nbthread to HAProxy")
	}
}
