//go:build !windows

package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"syscall"
	"testing"
	"time"
)

// The first SIGTERM stops gracefully (cancels the agent's context); a second
// one, while the stop runs, exits at once with status 2.
func TestSecondSignalForcesExit(t *testing.T) {
	exited := make(chan int, 1)
	exit = func(code int) { exited <- code }
	defer func() { exit = os.Exit }()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan struct{})
	defer close(done)
	go handleSignals(ctx, stop, done, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	time.Sleep(50 * time.Millisecond) // let it register for the signals
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the first SIGTERM did not start the graceful stop")
	}
	select {
	case code := <-exited:
		t.Fatalf("exited with %d on the first signal", code)
	case <-time.After(100 * time.Millisecond):
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exited:
		if code != 2 {
			t.Fatalf("exit status %d on the second signal, want 2", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second SIGTERM did not force the exit")
	}
}
