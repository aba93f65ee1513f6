package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/webfarm/farm/filter/vip"
	"github.com/webfarm/farm/tests/lab"
)

// The peers the farm is measured against, built by hand in labs without
// agents: the kernel's own cluster filters (xt_cluster, nft jhash) on the
// same three nodes, and a central HAProxy in a fourth namespace. Their
// processes (HAProxy, the UDP responders) are recorded in the lab's pid
// directory like the lab's own, so lab.Close and a later CleanupStale kill
// them by PID and start time.

// auxProc is a process farmbench started inside a lab namespace.
type auxProc struct {
	name string
	pid  int
	done chan struct{}
}

func (p *auxProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// startAux starts args in namespace ns in its own session, output to
// RunDir/NAME.log, and records it as RunDir/pids/NAME.pid ("pid start").
func startAux(l *lab.Lab, name, ns string, args ...string) (*auxProc, error) {
	logPath := filepath.Join(l.RunDir, name+".log")
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer f.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", name, ns, err)
	}
	p := &auxProc{name: name, pid: cmd.Process.Pid, done: make(chan struct{})}
	start, _ := procStartTicks(p.pid)
	pidFile := filepath.Join(l.RunDir, "pids", name+".pid")
	if err := os.WriteFile(pidFile, []byte(fmt.Sprintf("%d %d\n", p.pid, start)), 0o644); err != nil {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		_ = cmd.Wait()
		return nil, fmt.Errorf("start %s: record pid: %w", name, err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// sh runs a shell script inside namespace ns.
func sh(ctx context.Context, l *lab.Lab, ns, script string) error {
	if _, err := l.Exec(ctx, ns, "sh", "-ec", script); err != nil {
		return fmt.Errorf("in %s: %w", ns, err)
	}
	return nil
}

// nftFile loads an nft script in namespace ns (through a file in the run
// dir: Exec has no stdin).
func nftFile(ctx context.Context, l *lab.Lab, ns, name, script string) error {
	p := filepath.Join(l.RunDir, name+".nft")
	if err := os.WriteFile(p, []byte(script), 0o644); err != nil {
		return err
	}
	if _, err := l.Exec(ctx, ns, "nft", "-f", p); err != nil {
		return fmt.Errorf("nft -f %s in %s: %w", p, ns, err)
	}
	return nil
}

// handVIP gives every node of l the VIP the way the agent does in vmac
// mode, without an agent: a macvlan holding the VIP with the virtual MAC
// (arp off, muted by a netdev egress drop, so the switch never learns the
// virtual MAC and keeps flooding it), and one node, arpNode, answering ARP
// for the VIP with the virtual MAC in the payload and its own MAC as the
// Ethernet source (an nft arp-family rule rewrites its reply). The others
// ignore ARP for the VIP. No static neighbour entry anywhere.
func handVIP(ctx context.Context, l *lab.Lab, arpNode int) error {
	vmac := vip.VirtualMAC(l.VIP4, vip.ModeVMAC).String()
	for i := 1; i <= len(l.Nodes); i++ {
		n := l.Node(i)
		ignore := 1
		if i == arpNode {
			ignore = 0
		}
		if err := sh(ctx, l, n.NS, fmt.Sprintf(`
ip link add farmv0 link %[1]s address %[2]s type macvlan mode private
ip link set farmv0 arp off
sysctl -qw net.ipv6.conf.farmv0.disable_ipv6=1
sysctl -qw net.ipv4.conf.farmv0.rp_filter=2
sysctl -qw net.ipv4.conf.all.arp_announce=2
sysctl -qw net.ipv4.conf.all.arp_ignore=%[3]d
`, n.Link, vmac, ignore)); err != nil {
			return fmt.Errorf("hand-made VIP on %s: %w", n.Name, err)
		}
		script := `table netdev benchvip {
	chain out { type filter hook egress device farmv0 priority 0; policy drop; }
	chain hold { type filter hook ingress device farmv0 priority 0; policy drop; meta pkttype host accept; }
}
`
		if i == arpNode {
			script += fmt.Sprintf(`table arp bencharp {
	chain out { type filter hook output priority 0; policy accept;
		arp operation reply arp saddr ip %s arp saddr ether set %s counter
	}
}
`, l.VIP4, vmac)
		}
		if err := nftFile(ctx, l, n.NS, "vip-"+n.Name, script); err != nil {
			return fmt.Errorf("hand-made VIP on %s: %w", n.Name, err)
		}
		if err := sh(ctx, l, n.NS, fmt.Sprintf("ip link set farmv0 up\nip addr add %s/32 dev farmv0\n", l.VIP4)); err != nil {
			return fmt.Errorf("hand-made VIP on %s: %w", n.Name, err)
		}
	}
	return nil
}

// peerSeed is the hash seed of both kernel peers.
const peerSeed = 0x6661726d

// xtCluster installs the xt_cluster filter (CLUSTERIP's successor) on every
// node, as its documentation shows: mark the packets of this node's share
// in mangle PREROUTING, drop the other packets to the VIP's port. The
// match hashes the conntrack entry's original source address on every
// packet.
func xtCluster(ctx context.Context, l *lab.Lab) error {
	n := len(l.Nodes)
	for i := 1; i <= n; i++ {
		h := l.Node(i)
		if err := sh(ctx, l, h.NS, fmt.Sprintf(`
iptables -t mangle -A PREROUTING -d %[1]s/32 -p tcp --dport 80 -m cluster --cluster-total-nodes %[2]d --cluster-local-node %[3]d --cluster-hash-seed %#[4]x -j MARK --set-mark 0xffff
iptables -t mangle -A PREROUTING -d %[1]s/32 -p tcp --dport 80 -m mark ! --mark 0xffff -j DROP
`, l.VIP4, n, i, peerSeed)); err != nil {
			return fmt.Errorf("xt_cluster on %s: %w", h.Name, err)
		}
	}
	return nil
}

// nftJhash installs the nft filter with conntrack marks: a new bare SYN
// whose jhash of the source address mod N is this node's gets the node's
// ct mark; packets of flows with that mark pass; everything else to the
// VIP's port is dropped. The same shape as the kernel engine, with N
// buckets instead of 4096 and no sets.
func nftJhash(ctx context.Context, l *lab.Lab) error {
	n := len(l.Nodes)
	for i := 1; i <= n; i++ {
		h := l.Node(i)
		script := fmt.Sprintf(`table ip benchjhash {
	chain pre { type filter hook prerouting priority -150; policy accept;
		ip daddr %[1]s tcp dport 80 ct mark 0x1 accept
		ip daddr %[1]s tcp dport 80 ct state new tcp flags & (fin|syn|rst|ack) == syn jhash ip saddr mod %[2]d seed %#[3]x == %[4]d ct mark set 0x1 accept
		ip daddr %[1]s tcp dport 80 drop
	}
}
`, l.VIP4, n, peerSeed, i-1)
		if err := nftFile(ctx, l, h.NS, "jhash-"+h.Name, script); err != nil {
			return fmt.Errorf("nft jhash on %s: %w", h.Name, err)
		}
	}
	return nil
}

// haproxyConf is the proxy in front of the nodes: http mode, server
// connections shared between clients (http-reuse always), round robin, no
// logging; threads as given (0: HAProxy picks one per CPU).
func haproxyConf(listen netip.Addr, servers []netip.Addr, threads int) string {
	var b strings.Builder
	b.WriteString("global\n\tmaxconn 8000\n")
	if threads > 0 {
		fmt.Fprintf(&b, "\tnbthread %d\n", threads)
	}
	b.WriteString(`
defaults
	mode http
	option http-keep-alive
	http-reuse always
	timeout connect 5s
	timeout client 60s
	timeout server 60s
	timeout http-keep-alive 60s

frontend vip
`)
	fmt.Fprintf(&b, "\tbind %s:80 backlog 4096\n\tdefault_backend nodes\n\nbackend nodes\n\tbalance roundrobin\n", listen)
	for i, s := range servers {
		fmt.Fprintf(&b, "\tserver web%d %s:80\n", i+1, s)
	}
	return b.String()
}

// startHAProxy puts the VIP on the proxy node's eth0 and runs HAProxy
// there in front of the other nodes.
func startHAProxy(ctx context.Context, l *lab.Lab, proxy int, threads int) (*auxProc, error) {
	n := l.Node(proxy)
	if _, err := exec.LookPath("haproxy"); err != nil {
		return nil, fmt.Errorf("haproxy not found (apt-get install haproxy; tests/bench.sh installs it): %w", err)
	}
	var servers []netip.Addr
	for i := 1; i <= len(l.Nodes); i++ {
		if i != proxy {
			servers = append(servers, l.Node(i).Addr4)
		}
	}
	cfg := filepath.Join(l.RunDir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(haproxyConf(l.VIP4, servers, threads)), 0o644); err != nil {
		return nil, err
	}
	if err := sh(ctx, l, n.NS, fmt.Sprintf("ip addr add %s/32 dev %s", l.VIP4, n.Link)); err != nil {
		return nil, fmt.Errorf("haproxy: VIP on %s: %w", n.Name, err)
	}
	p, err := startAux(l, "haproxy", n.NS, "haproxy", "-db", "-f", cfg)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if p.exited() {
			return nil, fmt.Errorf("haproxy exited: see %s", filepath.Join(l.RunDir, "haproxy.log"))
		}
		gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := l.Get(gctx, l.Client.Addr4, lab.URL(l.VIP4, "/"))
		cancel()
		if err == nil {
			return p, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("haproxy does not answer on the VIP: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// udpPort is the port of the UDP request/response load.
const udpPort = 5353

// startEcho starts the UDP responder on node i, answering on the VIP.
func startEcho(l *lab.Lab, i int) (*auxProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	n := l.Node(i)
	return startAux(l, "udpecho-"+n.Name, n.NS, self, "udpecho",
		"-listen", netip.AddrPortFrom(l.VIP4, udpPort).String(), "-name", n.Name)
}

// nginxPIDs returns node i's nginx master and workers.
func nginxPIDs(l *lab.Lab, i int) []int {
	b, err := os.ReadFile(filepath.Join(l.NginxDir(i), "nginx.pid"))
	if err != nil {
		return nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return nil
	}
	return append([]int{pid}, childrenOf(pid)...)
}
