package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestDerive(t *testing.T) {
	r := &cmpRun{Load: &loadResult{Requests: 100000, Conns: 100000}, ClientCPU: 5, NginxCPU: 2, AgentCPU: 0.5, SoftirqdCPU: 0.1,
		MachineBusy: 19, Queued: map[string]int64{"web1": 100000, "web2": 100000, "web3": 100000}}
	r.derive(10, 0.02)
	approx := func(name string, got, want float64) {
		t.Helper()
		if got < want-1e-6 || got > want+1e-6 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	approx("req/s", r.ReqPerSec, 10000)
	approx("lab us", r.LabUS, 76)
	approx("client us", r.ClientUS, 50)
	approx("nodes us", r.NodesUS, 26)
	approx("machine us", r.MachineUS, 190)
	approx("agent us/req", r.AgentUSPerReq, 3)    // (0.5 - 0.2) s / 100000
	approx("agent us/queued", r.AgentUSPerSYN, 1) // (0.5 - 0.2) s / 300000
}

func fakeRun(rps, labUS float64, fails int64) *cmpRun {
	return &cmpRun{Load: &loadResult{Failures: fails, PerNode: map[string]int64{"web1": 1}}, ReqPerSec: rps, LabUS: labUS}
}

func TestSummarizeCompare(t *testing.T) {
	mode := func(m string, runs ...*cmpRun) *cmpMode { return &cmpMode{Mode: m, Runs: runs} }
	rep := &cmpReport{Cases: []*cmpCase{
		{Name: caseNone, Label: "a", Modes: []*cmpMode{mode(modeKeepAlive, fakeRun(100, 10, 0), fakeRun(90, 11, 0), fakeRun(110, 9, 0))}},
		{Name: caseKernel, Label: "b", Modes: []*cmpMode{mode(modeKeepAlive, fakeRun(80, 20, 0), fakeRun(60, 30, 0), fakeRun(70, 25, 0)), mode(modeClose, fakeRun(10, 100, 1))}},
		{Name: caseXT, Label: "c1", Modes: []*cmpMode{mode(modeKeepAlive, fakeRun(50, 20, 0)), mode(modeClose, fakeRun(5, 100, 0))}},
		{Name: caseJhash, Label: "c2", Modes: []*cmpMode{mode(modeKeepAlive, fakeRun(70, 20, 0)), mode(modeClose, fakeRun(20, 80, 0))}},
		{Name: caseHAProxy, Label: "d", Modes: []*cmpMode{mode(modeKeepAlive, fakeRun(35, 50, 0)), mode(modeClose, fakeRun(8, 200, 0))}},
	}}
	summarizeCompare(rep)
	got := map[string]cmpRatio{}
	for _, r := range rep.Ratios {
		got[r.Name+" "+r.Mode] = r
	}
	check := func(key, over string, rps, cpu float64) {
		t.Helper()
		r, ok := got[key]
		if !ok {
			t.Fatalf("no ratio %s in %+v", key, rep.Ratios)
		}
		if r.Over != over || r.RPS < rps-1e-9 || r.RPS > rps+1e-9 || r.CPU < cpu-1e-9 || r.CPU > cpu+1e-9 {
			t.Errorf("%s = %+v, want over %s req/s %v CPU %v", key, r, over, rps, cpu)
		}
	}
	check("b/a keep-alive", caseNone, 0.7, 0.4)
	check("b/c keep-alive", caseJhash, 1.0, 0.8) // the better peer by req/s
	check("b/d keep-alive", caseHAProxy, 2.0, 2.0)
	check("b/c close", caseJhash, 0.5, 0.8)
	met := map[string]bool{}
	for _, tg := range rep.Targets {
		met[tg.What] = tg.Met
	}
	want := map[string]bool{
		"b >= 1.0 x the better kernel peer, keep-alive": true,
		"b >= 1.0 x the better kernel peer, close":      false,
		"b >= 1.5 x HAProxy, keep-alive":                true,
		"b >= 1.2 x HAProxy, close":                     true,
		"0 failed requests (b, b')":                     false,
	}
	for k, v := range want {
		if m, ok := met[k]; !ok || m != v {
			t.Errorf("target %q: met %v (present %v), want %v", k, m, ok, v)
		}
	}
	var out bytes.Buffer
	rep.Kill = &killReport{Victim: "web2", Engine: "kernel", Rate: 1000, Sources: 64, SynAcks: 10, ClientSYNs: 10}
	printCompare(&out, rep)
	for _, s := range []string{"(b)", "farm-kernel", "b/c", "NOT MET", "kill: SIGKILL of web2's agent", "0 SYNs answered twice"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %q:\n%s", s, out.String())
		}
	}
}
