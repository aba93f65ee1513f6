package checkers

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/webfarm/farm/checkers/script"
)

// MaxBody caps how much of an HTTP response body an http checker reads.
const MaxBody = 64 << 10

// Probe is one check of the local application: nil means it passed. Every
// checker type has this shape; smoothing and actions live elsewhere.
type Probe interface {
	// Check probes once; it returns when ctx ends at the latest.
	Check(ctx context.Context) error
}

// NewProbe builds the probe for s, a complete Spec (see Spec: the config
// validated it). Its Check applies s.Timeout. env is added to a script
// checker's environment (FARM_NODE, FARM_VIP); FARM_ACTION=check and
// FARM_CHECKER are added here. The only error is an unknown type or a vip
// target that is no address, which a validated Spec never has.
func NewProbe(s Spec, env []string) (Probe, error) {
	var p Probe
	switch s.Type {
	case TypeTCP:
		p = tcpProbe{addr: s.Target}
	case TypeHTTP:
		p = newHTTPProbe(s)
	case TypeProcess:
		p = processProbe{target: s.Target, pidFile: strings.ContainsAny(s.Target, `/\`)}
	case TypeScript:
		env = append(append([]string(nil), env...), "FARM_ACTION=check", "FARM_CHECKER="+s.Name)
		p = scriptProbe{path: s.Target, env: env}
	case TypeInterface:
		p = interfaceProbe{name: s.Target}
	case TypeVIP:
		a, err := netip.ParseAddr(s.Target)
		if err != nil {
			return nil, fmt.Errorf("checkers: checker %q: vip target %q is not an IP address", s.Name, s.Target)
		}
		p = vipProbe{addr: a.Unmap()}
	default:
		return nil, fmt.Errorf("checkers: checker %q: unknown type %q", s.Name, s.Type)
	}
	return timedProbe{p: p, timeout: s.Timeout}, nil
}

// timedProbe applies the checker's timeout and says so when it struck.
type timedProbe struct {
	p       Probe
	timeout time.Duration
}

func (t timedProbe) Check(ctx context.Context) error {
	tctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	err := t.p.Check(tctx)
	if err != nil && ctx.Err() == nil && errors.Is(tctx.Err(), context.DeadlineExceeded) &&
		!strings.Contains(err.Error(), "timed out") {
		err = fmt.Errorf("%w (timed out after %s)", err, t.timeout)
	}
	return err
}

type tcpProbe struct{ addr string }

func (p tcpProbe) Check(ctx context.Context) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return err // "dial tcp 127.0.0.1:80: connect: connection refused"
	}
	return c.Close()
}

type httpProbe struct {
	client *http.Client
	url    string
	host   string
	body   []byte
	expect int
}

func newHTTPProbe(s Spec) *httpProbe {
	tlsConf := &tls.Config{InsecureSkipVerify: s.SkipVerify} //nolint:gosec // operator's choice, off by default
	if s.Host != "" {
		host := s.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		tlsConf.ServerName = host // the certificate of the virtual host asked for
	}
	tr := &http.Transport{
		Proxy:                  nil, // the application is local: never go through HTTP_PROXY
		DialContext:            (&net.Dialer{}).DialContext,
		TLSClientConfig:        tlsConf,
		DisableKeepAlives:      true, // every probe opens a fresh connection, as a client would
		MaxResponseHeaderBytes: MaxBody,
	}
	return &httpProbe{
		client: &http.Client{
			Transport: tr,
			// The status of the page asked for is what is checked; a redirect
			// is an answer in itself (Expect = 302 accepts it).
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		url:    s.Target,
		host:   s.Host,
		body:   []byte(s.Body),
		expect: s.Expect,
	}
}

func (p *httpProbe) Check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return fmt.Errorf("http %s: %w", p.url, err)
	}
	if p.host != "" {
		req.Host = p.host
	}
	req.Header.Set("User-Agent", "farm-checker")
	resp, err := p.client.Do(req)
	if err != nil {
		return err // `Get "http://...": dial tcp ...: connection refused`
	}
	defer resp.Body.Close()
	if resp.StatusCode != p.expect {
		return fmt.Errorf("http %s: status %d, want %d", p.url, resp.StatusCode, p.expect)
	}
	if len(p.body) == 0 {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if bytes.Contains(b, p.body) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("http %s: reading the body: %w", p.url, err)
	}
	return fmt.Errorf("http %s: body does not contain %q (read %d bytes, at most %d)", p.url, p.body, len(b), MaxBody)
}

// processProbe checks a process by pid file or by name; the OS parts are
// pidAlive and processByName in process_*.go.
type processProbe struct {
	target  string
	pidFile bool
}

func (p processProbe) Check(ctx context.Context) error {
	if !p.pidFile {
		return processByName(ctx, p.target)
	}
	pid, err := readPidFile(p.target)
	if err != nil {
		return err
	}
	if err := pidAlive(pid); err != nil {
		return fmt.Errorf("process: pid %d from %s: %w", pid, p.target, err)
	}
	return nil
}

func readPidFile(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("process: pid file: %w (is the application running?)", err)
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 64))
	fields := strings.Fields(string(b))
	var pid int
	if len(fields) > 0 {
		_, err = fmt.Sscanf(fields[0], "%d", &pid)
	}
	if len(fields) == 0 || err != nil || pid <= 0 {
		return 0, fmt.Errorf("process: pid file %s holds %q, not a process id", path, bytes.TrimSpace(b))
	}
	return pid, nil
}

type scriptProbe struct {
	path string
	env  []string
}

func (p scriptProbe) Check(ctx context.Context) error {
	res := script.Run(ctx, p.path, nil, p.env)
	if res.Err == nil {
		return nil
	}
	if line := script.LastLine(res.Output, 200); line != "" {
		return fmt.Errorf("%w: %s", res.Err, line)
	}
	return res.Err
}

type interfaceProbe struct{ name string }

func (p interfaceProbe) Check(context.Context) error {
	ifi, err := net.InterfaceByName(p.name)
	if err != nil {
		return fmt.Errorf("interface %q: %w (`farm check` lists this host's interfaces)", p.name, err)
	}
	if ifi.Flags&net.FlagUp == 0 {
		return fmt.Errorf("interface %q is administratively down", p.name)
	}
	if ifi.Flags&net.FlagRunning == 0 {
		return fmt.Errorf("interface %q is up but has no link (no carrier)", p.name)
	}
	return nil
}

type vipProbe struct{ addr netip.Addr }

func (p vipProbe) Check(context.Context) error {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return fmt.Errorf("vip %s: listing this host's addresses: %w", p.addr, err)
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == p.addr {
			return nil
		}
	}
	return fmt.Errorf("vip %s is not configured on any interface of this host", p.addr)
}
