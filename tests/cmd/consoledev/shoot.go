package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// screenshots walks the console in headless chromium and saves what it sees:
// the login page, the console at 1280 px, a drain's confirmation, the drain,
// the what-if dialog, and the console at 360 px (a phone). It fails on any
// script error or CSP violation the page reports.
func screenshots(parent context.Context, base, password, dir, chromium string, f *fakeFarm) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	profile, err := os.MkdirTemp("", "consoledev-chromium-")
	if err != nil {
		return err
	}
	defer func() {
		for range 50 { // chromium's children may still write for a moment
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	actx, cancel := chromedp.NewExecAllocator(parent,
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(profile), chromedp.WindowSize(1280, 900))
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(bctx); err != nil {
		return fmt.Errorf("start chromium: %w", err)
	}
	var (
		mu       sync.Mutex
		problems []string
	)
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
			if m.IsException() || m.Type == "error" || m.Type == "warning" {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%s %s:%d: %s", m.Type, m.URL, m.Line+1, m.Text))
				mu.Unlock()
			}
		}
	}()

	ctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	defer cancel()
	shot := func(name string, full bool) error {
		act := chromedp.CaptureScreenshot()
		if full {
			act = chromedp.FullScreenshot(100)
		}
		png, err := chromedp.Run(ctx, act)
		if err != nil {
			return fmt.Errorf("screenshot %s: %w", name, err)
		}
		p := filepath.Join(dir, name+".png")
		fmt.Fprintln(os.Stderr, "screenshot:", p)
		return os.WriteFile(p, png, 0o644)
	}
	wait := func(what, js string) error {
		deadline := time.Now().Add(20 * time.Second)
		for {
			ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
			if err == nil && ok {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("waiting for %s: timed out (last error %v)", what, err)
			}
			time.Sleep(150 * time.Millisecond)
		}
	}
	nodeState := func(node, state string) string {
		return fmt.Sprintf(`!!document.querySelector('.node[data-node=%q][data-state=%q]')`, node, state)
	}

	steps := []func() error{
		func() error { return chromedp.Do(ctx, chromedp.Navigate(base+"/login")) },
		func() error { return shot("login-1280", false) },
		func() error {
			return chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("password"), "wrong"), chromedp.Click(chromedp.ID("login")))
		},
		func() error { return wait("the login error", `!!document.querySelector('#error:not([hidden])')`) },
		func() error { return shot("login-error-1280", false) },
		func() error {
			return chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("password"), password), chromedp.Click(chromedp.ID("login")))
		},
		func() error {
			return wait("3 nodes up", `document.querySelectorAll('.node[data-state="up"]').length >= 3 && !!document.querySelector('#bucket-map[data-version]')`)
		},
		func() error { return chromedp.Do(ctx, chromedp.Sleep(1200*time.Millisecond)) },
		func() error { return shot("console-1280", true) },
		func() error {
			return chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[data-action="drain"][data-node="web2"]`)))
		},
		func() error {
			return wait("the drain what-if", `document.querySelector('#confirm').dataset.ready === "true"`)
		},
		func() error { return shot("confirm-drain-1280", false) },
		func() error { return chromedp.Do(ctx, chromedp.Click(chromedp.ID("confirm-ok"))) },
		func() error { return wait("web2 draining", nodeState("web2", "draining")) },
		func() error { return chromedp.Do(ctx, chromedp.Sleep(300*time.Millisecond)) },
		func() error { return shot("draining-1280", true) },
		func() error { return wait("web2 stopped", nodeState("web2", "stopped")) },
		func() error { return chromedp.Do(ctx, chromedp.Click(chromedp.ID("whatif-open"))) },
		func() error { return wait("the what-if", `document.querySelector('#whatif').dataset.ready === "true"`) },
		func() error { return shot("whatif-1280", false) },
		func() error {
			return chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`input[name="wi-kind"][value="add"]`)))
		},
		func() error {
			return wait("the add what-if", `document.querySelector('#whatif').dataset.ready === "true" && document.querySelector('#whatif-plan').dataset.summary.includes("-> web4")`)
		},
		func() error { return shot("whatif-add-1280", false) },
		func() error {
			return chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`input[name="wi-kind"][value="node"]`)))
		},
		func() error { return chromedp.Do(ctx, chromedp.Click(chromedp.ID("whatif-close"))) },
		func() error {
			return chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[data-action="start"][data-node="web2"]`)))
		},
		func() error {
			return wait("the start what-if", `document.querySelector('#confirm').dataset.ready === "true"`)
		},
		func() error { return chromedp.Do(ctx, chromedp.Click(chromedp.ID("confirm-ok"))) },
		func() error { return wait("web2 up", nodeState("web2", "up")) },
		func() error { return chromedp.Do(ctx, chromedp.Sleep(1500*time.Millisecond)) },
		func() error { return shot("started-1280", true) },
		func() error { return chromedp.Do(ctx, chromedp.EmulateViewport(360, 780, chromedp.EmulateScale(2))) },
		func() error { return chromedp.Do(ctx, chromedp.Sleep(500*time.Millisecond)) },
		func() error { return shot("console-360", true) },
		func() error {
			return chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[data-action="stop"][data-node="web3"]`)))
		},
		func() error {
			return wait("the stop what-if", `document.querySelector('#confirm').dataset.ready === "true"`)
		},
		func() error { return shot("confirm-stop-360", false) },
		func() error { return chromedp.Do(ctx, chromedp.Click(chromedp.ID("confirm-cancel"))) },
		func() error { return chromedp.Do(ctx, chromedp.Click(chromedp.ID("whatif-open"))) },
		func() error { return wait("the what-if", `document.querySelector('#whatif').dataset.ready === "true"`) },
		func() error { return shot("whatif-360", false) },
		func() error { return chromedp.Do(ctx, chromedp.Click(chromedp.ID("whatif-close"))) },
		func() error { return pollingFallback(ctx, base, f, wait, nodeState) },
		func() error { return chromedp.Do(ctx, chromedp.Click(chromedp.ID("logout"))) },
		func() error { return wait("the login page", `!!document.querySelector('#password')`) },
		func() error { return shot("login-360", false) },
	}
	for i, s := range steps {
		if err := s(); err != nil {
			return fmt.Errorf("step %d: %w", i+1, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		return fmt.Errorf("the page reported:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

// pollingFallback opens the console in a second tab of the same browser with
// EventSource removed, and checks that polling shows a change made behind
// the page's back within 2 s.
func pollingFallback(parent context.Context, base string, f *fakeFarm, wait func(what, js string) error, nodeState func(node, state string) string) error {
	ctx, cancel := chromedp.NewContext(parent)
	defer cancel()
	noES := func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: "delete window.EventSource;"})
		return chromedp.Void{}, err
	}
	if err := chromedp.Do(ctx, noES, chromedp.Navigate(base+"/")); err != nil {
		return err
	}
	tabWait := func(what, js string) error {
		deadline := time.Now().Add(10 * time.Second)
		for {
			ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
			if err == nil && ok {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("polling tab: waiting for %s: timed out (last error %v)", what, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if err := tabWait("polling with 3 nodes up", `document.body.dataset.conn === "polling" && document.querySelectorAll('.node[data-state="up"]').length === 3`); err != nil {
		return err
	}
	if err := f.Act(ctx, "web3", "stop"); err != nil {
		return err
	}
	start := time.Now()
	if err := tabWait("web3 stopped", nodeState("web3", "stopped")+` && document.querySelector('#bucket-map').dataset.changed !== "0"`); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "polling tab saw web3 stop after %v\n", time.Since(start).Round(10*time.Millisecond))
	if err := f.Act(ctx, "web3", "start"); err != nil {
		return err
	}
	return tabWait("web3 up", nodeState("web3", "up"))
}
