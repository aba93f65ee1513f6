package rules

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/internal/testenv"
)

// TestInstallRemove installs real rules in a fresh network namespace and
// checks what the kernel holds after each step. Steps run in the test
// goroutine (the one inside the namespace), so there are no subtests.
func TestInstallRemove(t *testing.T) {
	testenv.RequireRoot(t, "network namespaces, nftables", "ip", "nft", "iptables", "iptables-restore", "ip6tables", "ip6tables-restore")
	testenv.EnterNetns(t, testenv.NewNetns(t, "rules")) // Install's commands run there too
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	dual := Spec{
		Self:  3,
		VIPs:  addrs("10.77.0.100", "2001:db8:77::100"),
		Rules: []filter.Rule{{Proto: filter.ProtoTCP, Ports: ports(t, "80,443")}, {Proto: filter.ProtoUDP, Ports: ports(t, "53")}},
		Queue: 5, Queues: 2,
	}
	mustContain := func(what, out string, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Errorf("%s lacks %q:\n%s", what, w, out)
			}
		}
	}
	jumps := func(tool string) int {
		t.Helper()
		out, err := sh(t, tool, "-t", "mangle", "-S", "PREROUTING")
		if err != nil {
			t.Fatalf("%s -S PREROUTING: %v: %s", tool, err, out)
		}
		return strings.Count(out, "-A PREROUTING -j FARM")
	}

	// Cleanup on a clean namespace is a no-op, not an error.
	if err := Cleanup(ctx); err != nil {
		t.Fatalf("Cleanup on nothing: %v", err)
	}

	for round := 1; round <= 2; round++ { // the second Install must change nothing
		if err := Install(ctx, dual); err != nil {
			t.Fatalf("Install round %d: %v", round, err)
		}
		out, err := sh(t, "nft", "list", "table", "ip", "farm")
		if err != nil {
			t.Fatalf("nft list table ip farm: %v: %s", err, out)
		}
		mustContain("nft ip farm", out, "10.77.0.100", "ct mark 0x0fa00003 accept", "ct mark set meta mark", "priority mangle - 10", "priority mangle + 10",
			"set reset_vips", "ip daddr @reset_vips tcp dport @tcp_ports ct state new")
		out, err = sh(t, "nft", "list", "table", "ip6", "farm")
		if err != nil {
			t.Fatalf("nft list table ip6 farm: %v: %s", err, out)
		}
		mustContain("nft ip6 farm", out, "2001:db8:77::100", "udp dport @udp_ports", "set reset_vips", "ip6 daddr @reset_vips")
		for _, tool := range []string{"iptables", "ip6tables"} {
			out, err := sh(t, tool, "-t", "mangle", "-S", "FARM")
			if err != nil {
				t.Fatalf("%s -S FARM: %v: %s", tool, err, out)
			}
			mustContain(tool+" FARM", out, "--queue-balance 5:6", "-p tcp", "-p udp", "--ctstate NEW",
				"-m tcp --tcp-flags FIN,SYN,RST,ACK SYN", "-m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN")
			if strings.Contains(out, "bypass") {
				t.Errorf("%s FARM has a bypass: %s", tool, out)
			}
			if n := strings.Count(out, "-A FARM"); n != 3 { // tcp SYN, tcp reset window, udp
				t.Errorf("round %d: %s FARM has %d rules, want 3:\n%s", round, tool, n, out)
			}
			if n := jumps(tool); n != 1 {
				t.Errorf("round %d: %s PREROUTING has %d jumps to FARM, want 1", round, tool, n)
			}
		}
	}

	// The reset window: SetReset fills both families' sets, in one go, and
	// empties them; an Install closes it.
	resetSet := func(family string) string {
		t.Helper()
		out, err := sh(t, "nft", "list", "set", family, "farm", "reset_vips")
		if err != nil {
			t.Fatalf("nft list set %s farm reset_vips: %v: %s", family, err, out)
		}
		return out
	}
	checkWindow := func(step string, open bool) {
		t.Helper()
		for family, vip := range map[string]string{"ip": "10.77.0.100", "ip6": "2001:db8:77::100"} {
			if out := resetSet(family); strings.Contains(out, vip) != open {
				t.Errorf("%s: %s reset_vips (want open=%v):\n%s", step, family, open, out)
			}
		}
	}
	checkWindow("after Install", false)
	for i, on := range []bool{true, true, false, false, true} { // idempotent both ways
		if err := SetReset(ctx, dual, on); err != nil {
			t.Fatalf("SetReset #%d (%v): %v", i+1, on, err)
		}
		checkWindow(fmt.Sprintf("SetReset #%d (%v)", i+1, on), on)
	}
	if err := Install(ctx, dual); err != nil {
		t.Fatalf("Install over an open window: %v", err)
	}
	checkWindow("Install over an open window", false)
	if err := SetReset(ctx, Spec{Self: 1, VIPs: dual.VIPs}, true); err == nil || !strings.Contains(err.Error(), "no rule") {
		t.Errorf("SetReset(invalid spec) = %v, want a validation error", err)
	}

	// Dropping the IPv6 VIP removes the IPv6 side.
	v4 := dual
	v4.VIPs = addrs("10.77.0.100")
	if err := Install(ctx, v4); err != nil {
		t.Fatalf("Install v4 only: %v", err)
	}
	if out, err := sh(t, "nft", "list", "table", "ip6", "farm"); err == nil {
		t.Errorf("ip6 farm table still there after an IPv4-only install:\n%s", out)
	}
	if out, err := sh(t, "ip6tables", "-t", "mangle", "-S", "FARM"); err == nil {
		t.Errorf("ip6tables FARM still there after an IPv4-only install:\n%s", out)
	}
	if n := jumps("ip6tables"); n != 0 {
		t.Errorf("ip6tables still jumps to FARM %d times", n)
	}

	// A spec the tools reject: the error carries their stderr.
	if err := Install(ctx, Spec{Self: 1, VIPs: addrs("10.77.0.100")}); err == nil || !strings.Contains(err.Error(), "no rule") {
		t.Errorf("Install(invalid) = %v, want a validation error", err)
	}

	for i := 1; i <= 2; i++ { // Remove is idempotent
		if err := Remove(ctx); err != nil {
			t.Fatalf("Remove #%d: %v", i, err)
		}
	}
	out, err := sh(t, "nft", "list", "tables")
	if err != nil {
		t.Fatalf("nft list tables: %v: %s", err, out)
	}
	if strings.Contains(out, " farm") {
		t.Errorf("farm tables left after Remove:\n%s", out)
	}
	for _, tool := range []string{"iptables", "ip6tables"} {
		out, _ := sh(t, tool, "-t", "mangle", "-S")
		if strings.Contains(out, "FARM") {
			t.Errorf("%s still mentions FARM after Remove:\n%s", tool, out)
		}
	}
	if err := Cleanup(ctx); err != nil {
		t.Errorf("Cleanup after Remove: %v", err)
	}
	// Without the tables, opening a window fails and says what to check.
	err = SetReset(ctx, v4, true)
	if err == nil || !strings.Contains(err.Error(), "installed") {
		t.Errorf("SetReset without rules = %v, want an error asking whether the rules are installed", err)
	}
	t.Logf("SetReset without rules (expected error): %v", err)
}

// TestInstallUndo makes the iptables step fail (the chain name is taken by
// an incompatible nft chain) and checks that the nft tables are removed.
func TestInstallUndo(t *testing.T) {
	testenv.RequireRoot(t, "network namespaces, nftables", "ip", "nft", "iptables", "iptables-restore")
	testenv.EnterNetns(t, testenv.NewNetns(t, "rules")) // Install's commands run there too
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A table mangle with a base chain named FARM that iptables cannot use.
	if out, err := sh(t, "nft", "add table ip mangle; add chain ip mangle FARM { type filter hook forward priority 0; }"); err != nil {
		t.Fatalf("prepare: %v: %s", err, out)
	}
	spec := Spec{Self: 1, VIPs: addrs("10.77.0.100"), Rules: []filter.Rule{{Proto: filter.ProtoTCP, Ports: ports(t, "80")}}}
	err := Install(ctx, spec)
	if err == nil {
		t.Fatal("Install succeeded over an incompatible FARM chain")
	}
	if !strings.Contains(err.Error(), "iptables") {
		t.Errorf("error does not name the failing tool: %v", err)
	}
	t.Logf("Install error (expected): %v", err)
	if out, lerr := sh(t, "nft", "list", "table", "ip", "farm"); lerr == nil {
		t.Errorf("ip farm table left after a failed Install:\n%s", out)
	}
}

// TestEngineLeftovers checks that each engine's set-up removes the other's
// leftovers: Install and Remove delete the kernel engine's GuardTable, and
// RemoveNFQueue deletes what Install made but leaves GuardTable alone.
func TestEngineLeftovers(t *testing.T) {
	testenv.RequireRoot(t, "network namespaces, nftables", "ip", "nft", "iptables", "iptables-restore", "ip6tables", "ip6tables-restore")
	testenv.EnterNetns(t, testenv.NewNetns(t, "rules")) // Install's commands run there too
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	guard := func() {
		t.Helper()
		script := fmt.Sprintf("add table ip %[1]s; add table ip6 %[1]s", GuardTable)
		if out, err := sh(t, "nft", script); err != nil {
			t.Fatalf("nft %s: %v: %s", script, err, out)
		}
	}
	list := func() string {
		t.Helper()
		out, err := sh(t, "nft", "list", "tables")
		if err != nil {
			t.Fatalf("nft list tables: %v: %s", err, out)
		}
		return out
	}
	spec := Spec{Self: 1, VIPs: addrs("10.77.0.100", "2001:db8:77::100"), Rules: []filter.Rule{{Proto: filter.ProtoTCP, Ports: ports(t, "80")}}}

	guard()
	if err := Install(ctx, spec); err != nil {
		t.Fatalf("Install: %v", err)
	}
	if out := list(); strings.Contains(out, GuardTable) || !strings.Contains(out, "table ip farm") {
		t.Errorf("after Install over a kernel engine's leftovers:\n%s", out)
	}
	guard()
	if err := RemoveNFQueue(ctx); err != nil {
		t.Fatalf("RemoveNFQueue: %v", err)
	}
	if out := list(); !strings.Contains(out, "table ip "+GuardTable) || !strings.Contains(out, "table ip6 "+GuardTable) || strings.Contains(out, "table ip farm\n") {
		t.Errorf("after RemoveNFQueue (the guard stays, the NFQUEUE tables go):\n%s", out)
	}
	if out, _ := sh(t, "iptables", "-t", "mangle", "-S"); strings.Contains(out, "FARM") {
		t.Errorf("iptables still mentions FARM after RemoveNFQueue:\n%s", out)
	}
	if err := Cleanup(ctx); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if out := list(); strings.Contains(out, "farm") {
		t.Errorf("after Cleanup:\n%s", out)
	}
}

// sh runs a command (in the caller's namespace) and returns its output.
func sh(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}
