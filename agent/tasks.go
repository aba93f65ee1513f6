package agent

import (
	"context"
	"sync"
)

// tasks owns the background work that operator actions start (a drain
// waiting for flows to end, an application script): Run stops and waits for
// all of it before it removes the rules, so nothing of it runs afterwards.
type tasks struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool
}

func newTasks() *tasks {
	ctx, cancel := context.WithCancel(context.Background())
	return &tasks{ctx: ctx, cancel: cancel}
}

// spawn runs fn in the background with a context that ends at stop. After
// stop it runs nothing and reports false.
func (t *tasks) spawn(fn func(ctx context.Context)) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		fn(t.ctx)
	}()
	return true
}

// stop cancels every task and waits for them to return.
func (t *tasks) stop() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
}
