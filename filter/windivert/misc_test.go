package windivert

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/webfarm/farm/farm/plan"
	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/vip"
)

func TestMACs(t *testing.T) {
	v4 := netip.MustParseAddr("10.0.0.100")
	v6 := netip.MustParseAddr("2001:db8::a:b0c:d")
	cases := []struct {
		name string
		got  string
		want string
	}{
		{"unicast ipv4 (NLB 02-BF-W-X-Y-Z)", UnicastMAC(v4).String(), "02:bf:0a:00:00:64"},
		{"multicast ipv4 (NLB 03-BF-W-X-Y-Z)", MulticastMAC(v4).String(), "03:bf:0a:00:00:64"},
		{"unicast ipv6 is filter/vip's", UnicastMAC(v6).String(), vip.VirtualMAC(v6, vip.ModeVMAC).String()},
		{"group ipv4 (NLB IGMP 239.255.Y.Z)", GroupOf(v4).String(), "239.255.0.100"},
		{"group mac ipv4 (01-00-5E-7F-Y-Z)", GroupMAC(v4).String(), "01:00:5e:7f:00:64"},
		{"group ipv6", GroupOf(v6).String(), "ff12::6661:726d:b0c:d"},
		{"group mac ipv6 (33-33 + low 32 bits)", GroupMAC(v6).String(), "33:33:0b:0c:00:0d"},
		{"group of a mapped address is the IPv4 one", GroupOf(netip.MustParseAddr("::ffff:10.1.2.3")).String(), "239.255.2.3"},
		{"frame mac vmac", FrameMAC(v4, vip.ModeVMAC).String(), "02:bf:0a:00:00:64"},
		{"frame mac multicast", FrameMAC(v4, vip.ModeMulticast).String(), "01:00:5e:7f:00:64"},
		{"frame mac igmp (Linux's name for the same frames)", FrameMAC(v4, vip.ModeIGMP).String(), "01:00:5e:7f:00:64"},
		{"group mac ipv6 is Linux igmp's", GroupMAC(v6).String(), vip.VirtualMAC(v6, vip.ModeIGMP).String()},
		{"frame mac of an unknown mode", FrameMAC(v4, vip.Mode(9)).String(), ""},
		{"invalid address", GroupMAC(netip.Addr{}).String(), ""},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s: %s, want %s", c.name, c.got, c.want)
		}
	}
	// The group MAC is what the stack programs for the group: for IPv4,
	// 01-00-5e and the low 23 bits of the group.
	for _, a := range []string{"192.168.255.200", "10.0.128.1"} {
		g := GroupOf(netip.MustParseAddr(a)).As4()
		m := GroupMAC(netip.MustParseAddr(a))
		if m[3] != g[1]&0x7f || m[4] != g[2] || m[5] != g[3] || !GroupOf(netip.MustParseAddr(a)).IsMulticast() {
			t.Errorf("%s: group %v mac %v", a, g, m)
		}
	}
}

// tcpTable4 builds a MIB_TCPTABLE_OWNER_PID buffer.
func tcpTable4(rows ...[6]uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(rows)))
	for _, r := range rows {
		for _, v := range r {
			b = binary.LittleEndian.AppendUint32(b, v)
		}
	}
	return b
}

// addr4 is an IPv4 address as a DWORD in network byte order, read by a
// little-endian host; port4 a port the same way (upper half garbage).
func addr4(s string) uint32 {
	a := netip.MustParseAddr(s).As4()
	return binary.LittleEndian.Uint32(a[:])
}

func port4(p uint16) uint32 { return 0xdead0000 | uint32(p>>8) | uint32(p&0xff)<<8 }

func TestParseTCPTable(t *testing.T) {
	vips := []netip.Addr{netip.MustParseAddr("10.0.0.100"), netip.MustParseAddr("2001:db8::100")}
	ports := mustPorts(t, "80,443")
	b4 := tcpTable4(
		[6]uint32{tcpStateEstab, addr4("10.0.0.100"), port4(80), addr4("192.0.2.1"), port4(40000), 4},
		[6]uint32{tcpStateSynRcvd, addr4("10.0.0.100"), port4(443), addr4("192.0.2.2"), port4(40001), 4},
		[6]uint32{tcpStateCloseWait, addr4("10.0.0.100"), port4(80), addr4("192.0.2.3"), port4(40002), 4},
		[6]uint32{2 /* listen */, addr4("10.0.0.100"), port4(80), 0, 0, 4},
		[6]uint32{11 /* time wait */, addr4("10.0.0.100"), port4(80), addr4("192.0.2.4"), port4(1), 4},
		[6]uint32{tcpStateEstab, addr4("10.0.0.11"), port4(80), addr4("192.0.2.5"), port4(2), 4},  // not a VIP
		[6]uint32{tcpStateEstab, addr4("10.0.0.100"), port4(22), addr4("192.0.2.6"), port4(3), 4}, // not balanced
	)
	var got []TCPSeed
	if err := parseTCPTable(b4, false, vips, ports, func(s TCPSeed) { got = append(got, s) }); err != nil {
		t.Fatal(err)
	}
	want := []TCPSeed{
		{key(t, pkt("192.0.2.1", "10.0.0.100", tcpHdr(40000, 80, ack), 0)), ClassEstablished},
		{key(t, pkt("192.0.2.2", "10.0.0.100", tcpHdr(40001, 443, ack), 0)), ClassSYN},
		{key(t, pkt("192.0.2.3", "10.0.0.100", tcpHdr(40002, 80, ack), 0)), ClassClosing},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("seeds\n got %v\nwant %v", got, want)
	}

	// IPv6 rows: local addr, scope, port, remote addr, scope, port, state, pid.
	row6 := func(local string, lport uint16, remote string, rport uint16, state uint32) []byte {
		var r []byte
		l, rm := netip.MustParseAddr(local).As16(), netip.MustParseAddr(remote).As16()
		r = append(r, l[:]...)
		r = binary.LittleEndian.AppendUint32(r, 0)
		r = binary.LittleEndian.AppendUint32(r, port4(lport))
		r = append(r, rm[:]...)
		r = binary.LittleEndian.AppendUint32(r, 0)
		r = binary.LittleEndian.AppendUint32(r, port4(rport))
		r = binary.LittleEndian.AppendUint32(r, state)
		return binary.LittleEndian.AppendUint32(r, 4)
	}
	b6 := binary.LittleEndian.AppendUint32(nil, 2)
	b6 = append(b6, row6("2001:db8::100", 443, "2001:db8:1::1", 50000, tcpStateFinWait2)...)
	b6 = append(b6, row6("2001:db8::101", 443, "2001:db8:1::1", 50001, tcpStateEstab)...)
	got = nil
	if err := parseTCPTable(b6, true, vips, ports, func(s TCPSeed) { got = append(got, s) }); err != nil {
		t.Fatal(err)
	}
	want = []TCPSeed{{key(t, pkt("2001:db8:1::1", "2001:db8::100", tcpHdr(50000, 443, ack), 0)), ClassEstablished}}
	if !slices.Equal(got, want) {
		t.Fatalf("ipv6 seeds\n got %v\nwant %v", got, want)
	}

	for _, bad := range [][]byte{nil, {1, 0, 0}, b4[:len(b4)-1], binary.LittleEndian.AppendUint32(nil, 1<<31)} {
		if err := parseTCPTable(bad, false, vips, ports, func(TCPSeed) {}); err == nil {
			t.Errorf("buffer of %d bytes accepted", len(bad))
		}
	}
}

func TestSpecValidate(t *testing.T) {
	ok := exampleSpec(t)
	if err := ok.Validate(); err != nil {
		t.Fatalf("example spec: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(*Spec)
		want   string
	}{
		{"node id", func(s *Spec) { s.Self = 0 }, "node id 0"},
		{"no vip", func(s *Spec) { s.VIPs = nil }, "no VIP"},
		{"multicast vip", func(s *Spec) { s.VIPs[0].Addr = netip.MustParseAddr("224.0.0.1") }, "not a usable unicast"},
		{"no interface", func(s *Spec) { s.VIPs[0].Interface = " " }, "adapter name is empty"},
		{"quote in interface", func(s *Spec) { s.VIPs[0].Interface = `Eth"1` }, "contains a quote"},
		{"bad mode", func(s *Spec) { s.VIPs[0].Mode = 7 }, "mode 7"},
		{"no rule", func(s *Spec) { s.Rules = nil }, "no rule"},
		{"icmp rule", func(s *Spec) { s.Rules[0].Proto = 1 }, "proto 1"},
		{"no state dir", func(s *Spec) { s.StateDir = "" }, "state_dir is empty"},
		{"vip adapter", func(s *Spec) { s.VIPAdapter = "a$b" }, "vip adapter"},
		{"priority", func(s *Spec) { s.Priority = PriorityHighest }, "priority 30000"},
		{"max flows", func(s *Spec) { s.MaxFlows = -1 }, "max flows -1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := exampleSpec(t)
			c.mutate(&s)
			err := s.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one containing %q", err, c.want)
			}
		})
	}
	// Spaces are fine in Windows aliases.
	s := exampleSpec(t)
	s.VIPs[0].Interface = "Ethernet 2"
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestGuardRecord(t *testing.T) {
	dir := t.TempDir()
	if r, err := readGuard(dir); r != nil || err != nil {
		t.Fatalf("no record: %v %v", r, err)
	}
	want := &guardRecord{PID: 4242, Created: 133000000000000000, Handle: 0x1a4, Priority: 1001,
		Filter: "inbound and true", Adapter: "farm-vip", VIPs: []string{"10.0.0.100"}, Firewall: true}
	if err := writeGuard(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := readGuard(dir)
	if err != nil || got.PID != want.PID || got.Created != want.Created || got.Handle != want.Handle ||
		got.Priority != want.Priority || got.Filter != want.Filter || !slices.Equal(got.VIPs, want.VIPs) || !got.Firewall {
		t.Fatalf("read back %+v, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, GuardFile+".tmp")); !os.IsNotExist(err) {
		t.Fatalf("temporary file left: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, GuardFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readGuard(dir); err == nil || !strings.Contains(err.Error(), "guard.ps1 release") {
		t.Fatalf("corrupt record: %v", err)
	}
	if err := removeGuard(dir); err != nil {
		t.Fatal(err)
	}
	if err := removeGuard(dir); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	if otherPriority(1000, 1000) != 1001 || otherPriority(1000, 1001) != 1000 || otherPriority(1000, 5) != 1000 {
		t.Fatal("otherPriority")
	}
}

func TestHostCommands(t *testing.T) {
	v4, v6 := netip.MustParseAddr("10.0.0.100"), netip.MustParseAddr("2001:db8::100")
	cases := []struct{ got, want string }{
		{addressCommand(true, "farm-vip", v4), `netsh interface ipv4 add address name="farm-vip" address=10.0.0.100 mask=255.255.255.255 store=active skipassource=true`},
		{addressCommand(false, "farm-vip", v4), `netsh interface ipv4 delete address name="farm-vip" address=10.0.0.100 store=active`},
		{addressCommand(true, "VIP holder 2", v6), `netsh interface ipv6 add address interface="VIP holder 2" address=2001:db8::100/128 store=active skipassource=true`},
		{addressCommand(false, "farm-vip", v6), `netsh interface ipv6 delete address interface="farm-vip" address=2001:db8::100 store=active`},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("\n got %s\nwant %s", c.got, c.want)
		}
	}

	s := exampleSpec(t)
	s.VIPs[1].Interface = "Ethernet 2"
	s.Rules = append(s.Rules, filter.Rule{Proto: filter.ProtoTCP, Ports: mustPorts(t, "8000-8100")})
	wantInstall := `$ErrorActionPreference = 'Stop'
Get-NetFirewallRule -Group 'farm-windivert-guard' -ErrorAction SilentlyContinue | Remove-NetFirewallRule
New-NetFirewallRule -Name 'farm-windivert-guard-tcp' -DisplayName 'farm WinDivert guard (tcp)' -Group 'farm-windivert-guard' -Direction Inbound -Action Block -Protocol TCP -LocalAddress '10.0.0.100','2001:db8::100' -LocalPort '80','443','8000-8100' -InterfaceAlias 'Ethernet','Ethernet 2' | Out-Null
New-NetFirewallRule -Name 'farm-windivert-guard-udp' -DisplayName 'farm WinDivert guard (udp)' -Group 'farm-windivert-guard' -Direction Inbound -Action Block -Protocol UDP -LocalAddress '10.0.0.100','2001:db8::100' -LocalPort '53' -InterfaceAlias 'Ethernet','Ethernet 2' | Out-Null
`
	if got := firewallScript(s, true); got != wantInstall {
		t.Errorf("install script\n got %s\nwant %s", got, wantInstall)
	}
	if got := firewallScript(s, false); !strings.HasSuffix(got, "Remove-NetFirewallRule\n") || strings.Contains(got, "New-") {
		t.Errorf("remove script: %s", got)
	}
	if psQuote("it's") != "'it''s'" {
		t.Error("psQuote")
	}

	enc := encodePowerShell("Write-Output 'é'")
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		t.Fatal(err)
	}
	u := make([]uint16, len(raw)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(raw[2*i:])
	}
	if string(utf16.Decode(u)) != "Write-Output 'é'" {
		t.Errorf("encoded command decodes to %q", string(utf16.Decode(u)))
	}
}

func TestSpecDefaults(t *testing.T) {
	var s Spec
	if s.vipAdapter() != DefaultVIPAdapter || s.priority() != DefaultPriority || s.maxFlows() != DefaultMaxFlows {
		t.Fatalf("defaults: %q %d %d", s.vipAdapter(), s.priority(), s.maxFlows())
	}
	s = Spec{VIPAdapter: "vips", Priority: -5, MaxFlows: 10}
	if s.vipAdapter() != "vips" || s.priority() != -5 || s.maxFlows() != 10 {
		t.Fatalf("set: %q %d %d", s.vipAdapter(), s.priority(), s.maxFlows())
	}
	if d := (Timeouts{UDP: time.Second}).withDefaults(); d.UDP != time.Second || d.Established != DefaultTimeouts.Established {
		t.Fatalf("timeouts %+v", d)
	}
}

// TestEngineWithoutRun: Apply, Stats, Seen and Flows work before Run (the
// agent may apply a plan before the engine is ready), and publish copies
// the flow table's sizes.
func TestEngineWithoutRun(t *testing.T) {
	s := exampleSpec(t)
	s.MaxFlows = 16
	e := New(s, nil)
	if err := e.Apply(plan.Plan{Table: fill(1)}); err != nil {
		t.Fatal(err)
	}
	e.core.Decide(pkt("192.0.2.1", "10.0.0.100", tcpHdr(1, 80, syn), 0), 0)
	e.core.Decide(pkt("192.0.2.1", "10.0.0.100", udpHdr(1, 53), 0), 0)
	e.core.Decide(pkt("192.0.2.2", "10.0.0.100", tcpHdr(1, 80, syn), 0), 0)
	e.core.Decide(pkt("192.0.2.2", "10.0.0.100", tcpHdr(1, 80, fin), 0), 0)
	e.publish()
	if n, err := e.Flows(context.Background()); err != nil || n != 2 {
		t.Fatalf("flows %d %v, want 2 (the closing one does not count)", n, err)
	}
	st := e.Stats()
	if st.Accepted != 4 || st.Flows != 3 {
		t.Fatalf("stats %+v", st)
	}
	if seen := e.Seen(); len(seen) != 2 || seen[0] != 3 {
		t.Fatalf("seen %v", seen)
	}
	if err := e.Apply(plan.Plan{}); err != nil || e.core.Decider().Table() != nil {
		t.Fatal("the zero plan did not withdraw the table")
	}
	select {
	case <-e.Ready():
		t.Fatal("ready before Run")
	default:
	}
	if !e.logDue(int64(2*time.Second)) || e.logDue(int64(2*time.Second+1)) || !e.logDue(int64(3*time.Second)) {
		t.Fatal("logDue does not allow one warning a second")
	}
}
