package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"

	"github.com/vishvananda/netns"
)

var netipZero netip.Addr

// DialContext returns a dial function whose sockets are created inside
// namespace ns (friendly names allowed), bound to src when src is valid. A
// socket stays in the namespace it was created in, so the returned
// connections work from any goroutine. It fits http.Transport.DialContext.
func (l *Lab) DialContext(ns string, src netip.Addr) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		h, err := l.handle(ns)
		if err != nil {
			return nil, err
		}
		d := net.Dialer{Timeout: l.opts.RequestTimeout}
		if src.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
			if strings.HasPrefix(network, "udp") {
				d.LocalAddr = &net.UDPAddr{IP: src.AsSlice()}
			}
		}
		return dialIn(ctx, h, &d, network, addr)
	}
}

// dialIn creates the connection on a thread switched into namespace h. If
// switching back fails the thread stays locked, so the runtime retires it
// instead of reusing it in the wrong namespace.
func dialIn(ctx context.Context, h netns.NsHandle, d *net.Dialer, network, addr string) (net.Conn, error) {
	var c net.Conn
	var derr error
	if err := inNS(h, func() error {
		c, derr = d.DialContext(ctx, network, addr)
		return nil
	}); err != nil {
		if c != nil {
			_ = c.Close()
		}
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return c, derr
}

// inNS runs f on a thread switched into namespace h; anything f creates
// (sockets) stays in that namespace.
func inNS(h netns.NsHandle, f func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("read current namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(h); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace: %w", err)
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		return fmt.Errorf("return to own namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// handle returns an open handle of namespace ns, cached until Close.
func (l *Lab) handle(ns string) (netns.NsHandle, error) {
	full, err := l.ResolveNS(ns)
	if err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, fmt.Errorf("lab %s is closed", l.ID)
	}
	if h, ok := l.handles[full]; ok {
		return h, nil
	}
	h, err := netns.GetFromName(full)
	if err != nil {
		return 0, fmt.Errorf("open namespace %s: %w", full, err)
	}
	l.handles[full] = h
	return h, nil
}

// HTTPClient returns an HTTP client whose connections start in namespace ns
// from source src (any address if src is the zero Addr), without keep-alive
// (one new connection per request) and with the lab's request timeout. Use
// it for the agent API inside a node: HTTPClient("web1", netip.Addr{}).
func (l *Lab) HTTPClient(ns string, src netip.Addr) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:             nil,
			DialContext:       l.DialContext(ns, src),
			DisableKeepAlives: true,
		},
		Timeout: l.opts.RequestTimeout,
	}
}

// Get makes one HTTP GET from the client namespace with source address src
// on a new connection, and returns the body with surrounding white space
// removed (so a node's answer is exactly its name). Anything but status 200
// is an error.
func (l *Lab) Get(ctx context.Context, src netip.Addr, url string) (string, error) {
	return get(ctx, l.HTTPClient(l.Client.NS, src), url)
}

func get(ctx context.Context, c *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("read body of %s: %w", url, err)
	}
	body := strings.TrimSpace(string(b))
	if resp.StatusCode != http.StatusOK {
		if len(body) > 200 {
			body = body[:200] + "..."
		}
		return "", fmt.Errorf("GET %s: status %d: %s", url, resp.StatusCode, body)
	}
	return body, nil
}

// burstWorkers bounds Burst's concurrency: enough to keep nodes busy, few
// enough for a 2-CPU machine.
const burstWorkers = 16

// Burst sends perSrc requests from each source (sequentially per source,
// sources in parallel, each request on a new connection) to url(src), and
// counts who answered. It stops early when ctx ends; unsent requests are
// not counted.
func (l *Lab) Burst(ctx context.Context, srcs []netip.Addr, perSrc int, url func(netip.Addr) string) Result {
	col := newCollector()
	jobs := make(chan netip.Addr)
	var wg sync.WaitGroup
	for w := 0; w < min(burstWorkers, len(srcs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for src := range jobs {
				c := l.HTTPClient(l.Client.NS, src)
				u := url(src)
				for k := 0; k < perSrc && ctx.Err() == nil; k++ {
					body, err := get(ctx, c, u)
					if errors.Is(err, context.Canceled) && ctx.Err() != nil {
						break
					}
					col.add(src, u, body, err)
				}
			}
		}()
	}
feed:
	for _, s := range srcs {
		select {
		case jobs <- s:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	return col.result()
}
