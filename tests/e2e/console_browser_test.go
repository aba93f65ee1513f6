//go:build linux

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/internal/testenv"
	"github.com/webfarm/farm/tests/lab"
)

// The browser test drives the real console of a 3-node lab farm in headless
// chromium: log in, see the nodes up with their shares, drain one and watch
// it go draining then stopped, start it again, see the bucket map change,
// and look at it at phone width. Screenshots are kept as artifacts.

const (
	consolePassword = "console-e2e-password"
	browserWait     = 30 * time.Second
)

// chromiumPath finds Debian's chromium.
func chromiumPath() (string, bool) {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium", true
	}
	return "", false
}

// artifactDir is where the screenshots go: $FARM_ARTIFACTS/console, else
// bin/artifacts/console in the repository (next to bin/farm).
func artifactDir(t *testing.T, l *lab.Lab) string {
	t.Helper()
	dir := filepath.Join(filepath.Dir(l.FarmBin()), "artifacts", "console")
	if d := os.Getenv("FARM_ARTIFACTS"); d != "" {
		dir = filepath.Join(d, "console")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifact directory: %v", err)
	}
	return dir
}

// forwardConsole serves, on a loopback port of the test's own namespace, the
// console of node i (127.0.0.1:9010 inside the node's namespace), so a
// browser started by the test reaches it as an operator on the node would.
func forwardConsole(t *testing.T, l *lab.Lab, i int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("console forwarder: %v", err)
	}
	dial := l.DialContext(l.Node(i).NS, netip.Addr{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn, on bool) {
		mu.Lock()
		defer mu.Unlock()
		if on {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				up, err := dial(ctx, "tcp", lab.ConsoleListen)
				if err != nil {
					return
				}
				defer up.Close()
				track(c, true)
				track(up, true)
				defer track(c, false)
				defer track(up, false)
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "http://" + ln.Addr().String()
}

// browser is one chromium tab on the console, with what the page reported.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	dir  string

	mu       sync.Mutex
	problems []string
}

func newBrowser(t *testing.T, exe, base, dir string) *browser {
	t.Helper()
	// Not t.TempDir: chromium's children can still write there for a moment
	// after it exits, and TempDir's cleanup would fail the test.
	profile, err := os.MkdirTemp("", "farm-e2e-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	actx, acancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(profile), chromedp.WindowSize(1280, 900))
	// No chromedp.WithLogf(t.Logf): chromedp may log after the test ended,
	// and t.Logf would panic then.
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(func() { bcancel(); acancel() })
	// The first Do starts chromium and binds its life to the context it is
	// given, so it gets bctx itself, not one with a timeout.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium %s: %v", exe, err)
	}
	b := &browser{t: t, ctx: bctx, base: base, dir: dir}
	msgs := chromedp.Console(bctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			// The wrong password's 401 is on purpose.
			if strings.Contains(m.Text, "401") && strings.HasSuffix(m.URL, "/login") {
				continue
			}
			if m.IsException() || m.Type == "error" {
				b.mu.Lock()
				b.problems = append(b.problems, fmt.Sprintf("%s %s:%d: %s", m.Type, m.URL, m.Line+1, m.Text))
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// do runs actions, bounded by browserWait.
func (b *browser) do(what string, acts ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	if err := chromedp.Do(ctx, acts...); err != nil {
		b.fail("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page. DevTools evaluation is
// not subject to the page's CSP; chromedp.Poll is (it uses new Function), so
// waits poll from Go instead.
func eval[T any](b *browser, js string) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](js))
}

// wait polls the JavaScript predicate js until it is true, for at most d.
func (b *browser) wait(what, js string, d time.Duration) time.Duration {
	b.t.Helper()
	start := time.Now()
	var last error
	for time.Since(start) < d {
		ok, err := eval[bool](b, js)
		if err == nil && ok {
			return time.Since(start)
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	b.fail("waiting %v for %s: timed out (last error: %v); the page shows: %s", d, what, last, b.summary())
	return 0
}

// summary is what the page shows of the nodes, for failure messages.
func (b *browser) summary() string {
	s, err := eval[string](b, `[...document.querySelectorAll('.node')].map(n => n.dataset.node + "=" + n.dataset.state + "/" + n.dataset.buckets).join(" ") + " conn=" + document.body.dataset.conn + " url=" + location.pathname`)
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return s
}

// shot saves a screenshot as name.png and logs its path: of the whole page,
// or with full false of the viewport only (a modal dialog's backdrop covers
// only the viewport).
func (b *browser) shot(name, what string, full bool) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	act := chromedp.CaptureScreenshot()
	if full {
		act = chromedp.FullScreenshot(100)
	}
	png, err := chromedp.Run(ctx, act)
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(b.dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	b.t.Logf("screenshot %s: %s", p, what)
}

// fail saves a screenshot of the failure and stops the test.
func (b *browser) fail(format string, args ...any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		p := filepath.Join(b.dir, "failed.png")
		if os.WriteFile(p, png, 0o644) == nil {
			b.t.Logf("screenshot %s: the page when the test failed", p)
		}
	}
	b.t.Fatalf(format, args...)
}

// mapState is the bucket map's table version and a digest of its pixels.
type mapState struct {
	Version string `json:"version"`
	Changed string `json:"changed"`
	Pixels  string `json:"pixels"`
}

func (b *browser) bucketMap() mapState {
	b.t.Helper()
	// The pixels' data URL is long; a short digest of it is enough to compare.
	m, err := eval[mapState](b, `(() => {
		const c = document.getElementById('bucket-map');
		const u = c.toDataURL();
		let h = 0;
		for (let i = 0; i < u.length; i++) h = (h * 31 + u.charCodeAt(i)) | 0;
		return {version: c.dataset.version || "", changed: c.dataset.changed || "", pixels: u.length + ":" + h};
	})()`)
	if err != nil {
		b.fail("read the bucket map: %v", err)
	}
	return m
}

func nodeIs(name, state string) string {
	return fmt.Sprintf(`!!document.querySelector('.node[data-node=%q][data-state=%q]')`, name, state)
}

func TestConsoleBrowser(t *testing.T) {
	exe, ok := chromiumPath()
	testenv.Need(t, ok, "chromium for the console's browser test (apt-get install chromium)")

	hash, err := bcrypt.GenerateFromPassword([]byte(consolePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(t.TempDir(), "console.pass")
	if err := os.WriteFile(pwFile, append(hash, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	// A drain that a held connection keeps going, bounded well inside the
	// test's waits.
	f := startFarm(t, 3, fmt.Sprintf("[node]\ndrain_timeout = \"20s\"\n\n[console]\npassword_file = %q\n", pwFile))
	l := f.l
	base := forwardConsole(t, l, 1)
	b := newBrowser(t, exe, base, artifactDir(t, l))

	// Log in, once wrong.
	b.do("open the login page", chromedp.Navigate(base+"/"))
	b.wait("the login page", `location.pathname === "/login" && !!document.getElementById('password')`, browserWait)
	b.do("log in wrong", chromedp.SendKeys(chromedp.ID("password"), "not-the-password"), chromedp.Click(chromedp.ID("login")))
	b.wait("the login error", `!!document.querySelector('#error:not([hidden])') && document.getElementById('error').textContent.length > 0`, browserWait)
	b.do("log in", chromedp.SendKeys(chromedp.ID("password"), consolePassword), chromedp.Click(chromedp.ID("login")))
	b.wait("3 nodes up with their shares",
		`location.pathname === "/" && document.querySelectorAll('.node[data-state="up"]').length === 3 &&
		 [...document.querySelectorAll('.node')].every(n => Number(n.dataset.buckets) > 0 && n.querySelector('.share-pct').textContent.endsWith('%')) &&
		 [...document.querySelectorAll('.node')].reduce((s, n) => s + Number(n.dataset.buckets), 0) === 4096 &&
		 !!document.querySelector('#bucket-map[data-version]')`, browserWait)
	b.wait("the live stream", `document.body.dataset.conn === "live"`, browserWait)
	time.Sleep(time.Second)
	b.shot("01-logged-in", "after login: 3 nodes up, their shares, the bucket map", true)
	before := b.bucketMap()

	// Hold a connection on web2, so its drain lasts until we let go.
	held, heldOn := holdFlow(t, l, 2)
	defer held.CloseIdleConnections()
	t.Logf("holding a keep-alive connection on %s", heldOn)

	// Drain web2 through its confirmation and what-if.
	b.do("click drain on web2", chromedp.Click(chromedp.CSS(`button[data-action="drain"][data-node="web2"]`)))
	b.wait("the drain's what-if", `document.getElementById('confirm').open && document.getElementById('confirm').dataset.ready === "true"`, browserWait)
	summary, _ := eval[string](b, `document.getElementById('confirm-plan').dataset.summary || ""`)
	if !strings.HasPrefix(summary, "moves ") || strings.HasPrefix(summary, "moves 0 ") || !strings.Contains(summary, "web2 -> ") {
		t.Errorf("the drain's what-if says %q, want the buckets moving away from web2", summary)
	}
	t.Logf("drain what-if: %s", summary)
	b.shot("02-confirm-drain", "the drain's confirmation with its what-if: "+summary, false)
	b.do("confirm the drain", chromedp.Click(chromedp.ID("confirm-ok")))
	took := b.wait("web2 draining", nodeIs("web2", "draining"), browserWait)
	t.Logf("the page showed web2 draining %v after the click", took.Round(10*time.Millisecond))
	b.wait("the map without web2", `document.getElementById('bucket-map').dataset.version !== `+jsString(before.Version), browserWait)
	b.shot("03-draining", "during the drain: web2 draining, its buckets moved to web1 and web3", true)
	during := b.bucketMap()
	if during.Pixels == before.Pixels || during.Changed == "0" || during.Changed == "" {
		t.Errorf("the bucket map did not change when web2 drained: before %+v, during %+v", before, during)
	}
	held.CloseIdleConnections()
	took = b.wait("web2 stopped", nodeIs("web2", "stopped"), browserWait)
	t.Logf("the page showed web2 stopped %v after the held connection closed", took.Round(10*time.Millisecond))

	// Start it again.
	b.do("click start on web2", chromedp.Click(chromedp.CSS(`button[data-action="start"][data-node="web2"]`)))
	b.wait("the start's what-if", `document.getElementById('confirm').open && document.getElementById('confirm').dataset.ready === "true"`, browserWait)
	b.do("confirm the start", chromedp.Click(chromedp.ID("confirm-ok")))
	b.wait("3 nodes up again", `document.querySelectorAll('.node[data-state="up"]').length === 3 &&
		[...document.querySelectorAll('.node')].every(n => Number(n.dataset.buckets) > 0)`, browserWait)
	b.wait("the map with web2 back", `document.getElementById('bucket-map').dataset.version !== `+jsString(during.Version), browserWait)
	time.Sleep(2 * time.Second) // let the changed cells' flash fade
	after := b.bucketMap()
	if after.Pixels == during.Pixels {
		t.Errorf("the bucket map did not change when web2 started: during %+v, after %+v", during, after)
	}
	if after.Version != before.Version {
		t.Logf("note: the table after the start (%s) differs from the first one (%s)", after.Version, before.Version)
	}
	// Every node records the state changes it sees, so the timeline of
	// web1's console has web2's.
	b.wait("web2's drain in the timeline", `[...document.querySelectorAll('.event')].some(e => e.dataset.node === "web2" && (e.dataset.what === "node.draining" || e.dataset.what === "node.stopped"))`, browserWait)
	// The timeline's filters.
	if _, err := eval[chromedp.Void](b, `(() => {
		for (const [id, v] of [["filter-node", "web2"], ["filter-kind", "node"]]) {
			const s = document.getElementById(id);
			s.value = v;
			s.dispatchEvent(new Event("change"));
		}
	})()`); err != nil {
		t.Errorf("set the timeline's filters: %v", err)
	}
	b.wait("the timeline filtered to web2's node events", `(() => {
		const evs = [...document.querySelectorAll('.event')];
		return evs.length > 0 && evs.every(e => e.dataset.node === "web2" && e.dataset.kind === "node");
	})()`, browserWait)
	b.do("scroll to the timeline", chromedp.ScrollIntoView(chromedp.ID("events-title")))
	b.shot("04a-events-filtered", "the timeline filtered to node web2, kind node", false)
	b.do("scroll back", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	if _, err := eval[chromedp.Void](b, `(() => {
		for (const id of ["filter-node", "filter-kind"]) {
			const s = document.getElementById(id);
			s.value = "";
			s.dispatchEvent(new Event("change"));
		}
	})()`); err != nil {
		t.Errorf("clear the timeline's filters: %v", err)
	}
	b.wait("the notices to go", `document.querySelectorAll('.toast').length === 0`, browserWait)
	b.shot("04-started", "after the start: 3 nodes up, the bucket map back, the events of the drain and the start", true)

	// A phone.
	b.do("narrow to 360 px", chromedp.EmulateViewport(360, 780, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	time.Sleep(700 * time.Millisecond)
	width, err := eval[int](b, `document.documentElement.scrollWidth`)
	if err != nil || width > 360 {
		t.Errorf("at 360 px the page is %d px wide (%v): it should not scroll sideways", width, err)
	}
	b.shot("05-phone-360", "the console at 360 px: stacked layout", true)

	// Log out: the console sends the browser back to the login page.
	b.do("log out", chromedp.Click(chromedp.ID("logout")))
	b.wait("the login page after logout", `location.pathname === "/login" && !!document.getElementById('password')`, browserWait)
	b.do("open the console logged out", chromedp.Navigate(base+"/"))
	b.wait("the login page again", `location.pathname === "/login"`, browserWait)

	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		t.Errorf("the page reported: %s", p)
	}
}

// jsString quotes s for JavaScript.
func jsString(s string) string { return fmt.Sprintf("%q", s) }

// holdFlow opens a keep-alive connection from the client to the VIP from a
// source owned by node id, and returns its client (CloseIdleConnections lets
// go) and the node that answered.
func holdFlow(t *testing.T, l *lab.Lab, id uint8) (*http.Client, string) {
	t.Helper()
	for _, src := range l.ClientAddrs4 {
		if expectedOwner([]uint8{1, 2, 3}, src, filter.AffinityIP) != id {
			continue
		}
		c := &http.Client{
			Timeout: 5 * time.Second,
			Transport: &http.Transport{
				Proxy: nil, DialContext: l.DialContext(l.Client.NS, src),
				MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute,
			},
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.VIPURL(src), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("hold a connection from %s: %v", src, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("hold a connection from %s: %v", src, err)
		}
		node := strings.TrimSpace(string(body))
		if node != nodeName(id) {
			t.Fatalf("the connection from %s reached %q, want %s", src, node, nodeName(id))
		}
		return c, node
	}
	t.Fatalf("no client source hashes to node %d", id)
	return nil, ""
}
