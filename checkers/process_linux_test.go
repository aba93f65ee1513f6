package checkers

import (
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestProcessProbeByName(t *testing.T) {
	self := filepath.Base(os.Args[0])
	if len(self) > 15 {
		self = self[:15] // comm is truncated; argv[0] matches the full name anyway
	}
	tests := []struct {
		name, target, wantErr string
	}{
		{"this test binary", filepath.Base(os.Args[0]), ""},
		{"comm name", self, ""},
		{"absent", "no-such-process-xyz", "no such process runs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantResult(t, probeOnce(t, completeSpec(TypeProcess, tt.target)), tt.wantErr)
		})
	}
}

func TestProcessProbePidFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A pid that is surely not running: a child that has exited and been reaped.
	cmd := osexec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	deadPid := cmd.Process.Pid
	// A zombie: a child that exited but is not reaped yet.
	zcmd := osexec.Command("true")
	if err := zcmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { zcmd.Wait() })
	zpid := fmt.Sprint(zcmd.Process.Pid)
	waitFor(t, "child to become a zombie", 10*time.Second, func() bool { return zombie(zpid) })

	tests := []struct {
		name, target, wantErr string
	}{
		{"self", write("self.pid", fmt.Sprintf("%d\n", os.Getpid())), ""},
		{"dead", write("dead.pid", fmt.Sprint(deadPid)), "not running"},
		{"zombie", write("zombie.pid", zpid), "zombie"},
		{"garbage", write("bad.pid", "nginx\n"), "not a process id"},
		{"empty", write("empty.pid", ""), "not a process id"},
		{"missing", filepath.Join(dir, "missing.pid"), "is the application running?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantResult(t, probeOnce(t, completeSpec(TypeProcess, tt.target)), tt.wantErr)
		})
	}
}
