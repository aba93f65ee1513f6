package main

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/webfarm/farm/tests/lab"
)

// loader is a steady load of new connections to the VIP: every source
// sends one request (a new connection) per interval, the sources evenly
// staggered, each request bounded by timeout. Every request is recorded.
type loader struct {
	l        *lab.Lab
	srcs     []netip.Addr
	interval time.Duration // per source
	timeout  time.Duration

	mu      sync.Mutex
	samples []sample
	wg      sync.WaitGroup
	cancel  context.CancelFunc
}

// startLoader starts rate requests per second in total over srcs.
func startLoader(ctx context.Context, l *lab.Lab, srcs []netip.Addr, rate float64, timeout time.Duration) *loader {
	ctx, cancel := context.WithCancel(ctx)
	ld := &loader{
		l:        l,
		srcs:     srcs,
		interval: time.Duration(float64(len(srcs)) / rate * float64(time.Second)),
		timeout:  timeout,
		cancel:   cancel,
	}
	t0 := time.Now()
	for k, src := range srcs {
		offset := ld.interval * time.Duration(k) / time.Duration(len(srcs))
		ld.wg.Add(1)
		go ld.source(ctx, src, t0.Add(offset))
	}
	return ld
}

func (ld *loader) source(ctx context.Context, src netip.Addr, next time.Time) {
	defer ld.wg.Done()
	c := &http.Client{Transport: &http.Transport{
		Proxy:             nil,
		DialContext:       ld.l.DialContext(ld.l.Client.NS, src),
		DisableKeepAlives: true,
	}}
	url := ld.l.VIPURL(src)
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		s := ld.one(ctx, c, src, url)
		if ctx.Err() != nil {
			return // an aborted request is no sample
		}
		ld.mu.Lock()
		ld.samples = append(ld.samples, s)
		ld.mu.Unlock()
		// Keep the schedule; skip the slots a slow request overran.
		next = next.Add(ld.interval)
		for now := time.Now(); next.Before(now); {
			next = next.Add(ld.interval)
		}
		timer.Reset(time.Until(next))
	}
}

func (ld *loader) one(ctx context.Context, c *http.Client, src netip.Addr, url string) sample {
	s := sample{Src: src, Start: time.Now()}
	rctx, cancel := context.WithTimeout(ctx, ld.timeout)
	defer cancel()
	var err error
	s.Node, err = getNode(rctx, c, url)
	s.End = time.Now()
	s.OK = err == nil
	s.Err = errClass(err)
	return s
}

// getNode makes one GET and returns the answering node's name (the body
// nginx serves in the lab); a status other than 200 is an error.
func getNode(ctx context.Context, c *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = errStatus(resp.StatusCode)
	}
	return strings.TrimSpace(string(body)), err
}

type errStatus int

func (e errStatus) Error() string { return "status " + http.StatusText(int(e)) }

// snapshot returns a copy of every sample so far.
func (ld *loader) snapshot() []sample {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return append([]sample(nil), ld.samples...)
}

// lastFailure is the end of the latest failed request (zero if none).
func (ld *loader) lastFailure() time.Time {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	for i := len(ld.samples) - 1; i >= 0; i-- {
		if !ld.samples[i].OK {
			return ld.samples[i].End
		}
	}
	return time.Time{}
}

// stop ends the load and waits for the sources to finish.
func (ld *loader) stop() {
	ld.cancel()
	ld.wg.Wait()
}
