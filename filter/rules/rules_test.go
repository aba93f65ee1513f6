package rules

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/webfarm/farm/filter"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func ports(t testing.TB, s string) *filter.PortSet {
	t.Helper()
	ps, err := filter.ParsePorts(s)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func goldenSpecs(t testing.TB) map[string]Spec {
	many := make([]string, 0, 20)
	for p := 1000; p < 1040; p += 2 {
		many = append(many, strconv.Itoa(p))
	}
	return map[string]Spec{
		"v4_tcp": {
			Self: 1, VIPs: addrs("10.0.0.100"),
			Rules: []filter.Rule{{Proto: filter.ProtoTCP, Ports: ports(t, "80,443")}},
		},
		"dual_stack": {
			Self:  12,
			VIPs:  addrs("2001:db8::100", "10.0.0.101", "10.0.0.100", "::ffff:10.0.0.100"),
			Rules: []filter.Rule{{Proto: filter.ProtoTCP, Ports: ports(t, "80,443")}, {Proto: filter.ProtoTCP, Ports: ports(t, "8000-8100,444"), Affinity: filter.AffinityNetwork}, {Proto: filter.ProtoUDP, Ports: ports(t, "53"), Affinity: filter.AffinityIPPort}},
			Queue: 10, Queues: 4,
		},
		"many_ports": {
			Self: 250, VIPs: addrs("192.0.2.10"),
			Rules: []filter.Rule{{Proto: filter.ProtoTCP, Ports: ports(t, strings.Join(many, ",")+",2000-2010,3000-3010,4000-4010")}},
			Queue: 3,
		},
		"v6_udp": {
			Self: 2, VIPs: addrs("2001:db8::53"),
			Rules: []filter.Rule{{Proto: filter.ProtoUDP, Ports: ports(t, "53,5353")}},
		},
	}
}

func TestGolden(t *testing.T) {
	for name, spec := range goldenSpecs(t) {
		if err := spec.Validate(); err != nil {
			t.Fatalf("%s: spec invalid: %v", name, err)
		}
		outputs := map[string]string{
			name + ".nft.golden":       NFT(spec),
			name + ".iptables.golden":  IPTables(spec, false),
			name + ".ip6tables.golden": IPTables(spec, true),
		}
		for file, got := range outputs {
			t.Run(file, func(t *testing.T) {
				path := filepath.Join("testdata", file)
				if *update {
					if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run `go test ./filter/rules -run TestGolden -update` to create it)", err)
				}
				if diff := cmp.Diff(string(want), got); diff != "" {
					t.Errorf("%s -golden +got:\n%s", file, diff)
				}
				for _, bad := range []string{"queue-bypass", "fail-open", "flush ruleset", "bypass"} {
					if strings.Contains(got, bad) {
						t.Errorf("%s contains %q: the data path must fail closed", file, bad)
					}
				}
			})
		}
	}
}

func TestValidate(t *testing.T) {
	good := Spec{Self: 1, VIPs: addrs("10.0.0.100"), Rules: []filter.Rule{{Proto: filter.ProtoTCP, Ports: ports(t, "80")}}}
	tests := []struct {
		name    string
		mutate  func(*Spec)
		errPart string
	}{
		{"good", func(*Spec) {}, ""},
		{"self 0", func(s *Spec) { s.Self = 0 }, "node id 0"},
		{"self 251", func(s *Spec) { s.Self = 251 }, "node id 251"},
		{"no vip", func(s *Spec) { s.VIPs = nil }, "no VIP"},
		{"zero vip", func(s *Spec) { s.VIPs = []netip.Addr{{}} }, "not a usable unicast address"},
		{"multicast vip", func(s *Spec) { s.VIPs = addrs("239.1.1.1") }, "vip 239.1.1.1"},
		{"unspecified vip", func(s *Spec) { s.VIPs = addrs("::") }, "vip ::"},
		{"no rule", func(s *Spec) { s.Rules = nil }, "no rule"},
		{"icmp rule", func(s *Spec) { s.Rules = []filter.Rule{{Proto: 1, Ports: ports(t, "1")}} }, "rule 1: proto 1"},
		{"no ports", func(s *Spec) { s.Rules = []filter.Rule{{Proto: filter.ProtoTCP}} }, "rule 1: no ports"},
		{"queues past 65535", func(s *Spec) { s.Queue, s.Queues = 65535, 2 }, "beyond 65535"},
		{"last queue 65535", func(s *Spec) { s.Queue, s.Queues = 65534, 2 }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			tt.mutate(&s)
			err := s.Validate()
			if tt.errPart == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errPart) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.errPart)
			}
		})
	}
}

func TestMultiportChunks(t *testing.T) {
	tests := []struct {
		ports string
		want  []string
	}{
		{"80", []string{"80"}},
		{"80,443,8000-8100", []string{"80,443,8000:8100"}},
		{"1,3,5,7,9,11,13,15,17,19,21,23,25,27,29", []string{"1,3,5,7,9,11,13,15,17,19,21,23,25,27,29"}},
		{"1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31", []string{"1,3,5,7,9,11,13,15,17,19,21,23,25,27,29", "31"}},
		// 7 ranges = 14 slots; the 8th range needs 2 more and starts a new list.
		{"1-2,4-5,7-8,10-11,13-14,16-17,19-20,22-23", []string{"1:2,4:5,7:8,10:11,13:14,16:17,19:20", "22:23"}},
		{"1-2,4-5,7-8,10-11,13-14,16-17,19-20,22", []string{"1:2,4:5,7:8,10:11,13:14,16:17,19:20,22"}},
	}
	for _, tt := range tests {
		t.Run(tt.ports, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, multiportChunks(ports(t, tt.ports))); diff != "" {
				t.Errorf("-want +got:\n%s", diff)
			}
		})
	}
}

func TestChainState(t *testing.T) {
	tests := []struct {
		name   string
		out    string
		want   chainState
		remove string
	}{
		{"nothing", "-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n", chainState{}, ""},
		{"installed", "-P PREROUTING ACCEPT\n-N FARM\n-A PREROUTING -j FARM\n-A FARM -d 10.0.0.100/32 -j NFQUEUE\n", chainState{chain: true, jumps: 1},
			"*mangle\n-D PREROUTING -j FARM\n-F FARM\n-X FARM\nCOMMIT\n"},
		{"two jumps", "-N FARM\n-A PREROUTING -j FARM\n-A PREROUTING -j FARM\n", chainState{chain: true, jumps: 2},
			"*mangle\n-D PREROUTING -j FARM\n-D PREROUTING -j FARM\n-F FARM\n-X FARM\nCOMMIT\n"},
		{"chain only", "-N FARM\n", chainState{chain: true}, "*mangle\n-F FARM\n-X FARM\nCOMMIT\n"},
		{"others' chains", "-N FARMER\n-A PREROUTING -j FARMER\n-A PREROUTING -s 1.2.3.4/32 -j FARM\n", chainState{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseChainState(tt.out)
			if got != tt.want {
				t.Errorf("parseChainState = %+v, want %+v", got, tt.want)
			}
			if r := iptRemove(got); r != tt.remove {
				t.Errorf("iptRemove = %q, want %q", r, tt.remove)
			}
		})
	}
}

func TestWithJump(t *testing.T) {
	got := withJump("*mangle\n:FARM - [0:0]\n-F FARM\nCOMMIT\n")
	want := "*mangle\n:FARM - [0:0]\n-F FARM\n-I PREROUTING 1 -j FARM\nCOMMIT\n"
	if got != want {
		t.Errorf("withJump = %q, want %q", got, want)
	}
}

func TestNFTReset(t *testing.T) {
	tcp := []filter.Rule{{Proto: filter.ProtoTCP, Ports: ports(t, "80")}}
	tests := []struct {
		name string
		vips []netip.Addr
		on   bool
		want string
	}{
		{"v4 on", addrs("10.0.0.101", "10.0.0.100"), true,
			"flush set ip farm reset_vips\nadd element ip farm reset_vips { 10.0.0.100, 10.0.0.101 }\n"},
		{"v4 off", addrs("10.0.0.100"), false, "flush set ip farm reset_vips\n"},
		{"dual on", addrs("2001:db8::100", "10.0.0.100"), true,
			"flush set ip farm reset_vips\nadd element ip farm reset_vips { 10.0.0.100 }\n" +
				"flush set ip6 farm reset_vips\nadd element ip6 farm reset_vips { 2001:db8::100 }\n"},
		{"dual off", addrs("2001:db8::100", "10.0.0.100"), false,
			"flush set ip farm reset_vips\nflush set ip6 farm reset_vips\n"},
		{"v6 on", addrs("2001:db8::100"), true,
			"flush set ip6 farm reset_vips\nadd element ip6 farm reset_vips { 2001:db8::100 }\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NFTReset(Spec{Self: 1, VIPs: tt.vips, Rules: tcp}, tt.on); got != tt.want {
				t.Errorf("NFTReset() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNFTRemovesAbsentFamily(t *testing.T) {
	v4only := NFT(Spec{Self: 1, VIPs: addrs("10.0.0.100"), Rules: []filter.Rule{{Proto: filter.ProtoTCP, Ports: ports(t, "80")}}})
	if !strings.Contains(v4only, "table ip6 farm {}\ndelete table ip6 farm\n") || strings.Contains(v4only, "table ip6 farm {\n") {
		t.Errorf("an IPv4-only spec must remove the ip6 table and not create it:\n%s", v4only)
	}
	if got, want := nftRemove(), "table ip farm {}\ndelete table ip farm\ntable ip6 farm {}\ndelete table ip6 farm\n"; got != want {
		t.Errorf("nftRemove = %q", got)
	}
}
