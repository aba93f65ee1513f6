package chaos

import (
	"reflect"
	"testing"
	"time"
)

// A seed is a replay: the same seed gives the same schedule, every time.
func TestScheduleIsAFunctionOfTheSeed(t *testing.T) {
	for _, seed := range []uint64{0, 1, 42, 1764581234567890123} {
		a := Schedule(seed, 10*time.Minute, 4)
		b := Schedule(seed, 10*time.Minute, 4)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("seed %d: two schedules differ:\n%v\n%v", seed, a, b)
		}
		// A shorter run replays the start of a longer one.
		short := Schedule(seed, 2*time.Minute, 4)
		if !reflect.DeepEqual(short, a[:len(short)]) {
			t.Errorf("seed %d: the 2-minute schedule is not a prefix of the 10-minute one", seed)
		}
	}
	if reflect.DeepEqual(Schedule(1, 2*time.Minute, 4), Schedule(2, 2*time.Minute, 4)) {
		t.Errorf("seeds 1 and 2 give the same schedule")
	}
}

// Every kind appears in a 2-minute schedule (rounds of all kinds), targets
// are valid nodes, a 2|2 split names two distinct nodes, a drain runs via
// another node, and the schedule fits its duration.
func TestScheduleShape(t *testing.T) {
	for seed := uint64(0); seed < 200; seed++ {
		s := Schedule(seed, 2*time.Minute, 4)
		seen := map[Kind]int{}
		var total time.Duration
		for i, st := range s {
			seen[st.Kind]++
			total += st.Estimate()
			if st.N != i+1 {
				t.Fatalf("seed %d: step %d numbered %d", seed, i+1, st.N)
			}
			for _, n := range st.Nodes {
				if n < 1 || n > 4 {
					t.Fatalf("seed %d: %v targets node %d", seed, st, n)
				}
			}
			if st.Kind == Split2v2 && (len(st.Nodes) != 2 || st.Nodes[0] == st.Nodes[1]) {
				t.Fatalf("seed %d: %v", seed, st)
			}
			if st.Kind == Drain && (st.Via == st.Nodes[0] || st.Via < 1 || st.Via > 4) {
				t.Fatalf("seed %d: %v", seed, st)
			}
			if st.Kind == Stall && (st.Hold < 200*time.Millisecond || st.Hold > 700*time.Millisecond) {
				t.Fatalf("seed %d: stall of %s", seed, st.Hold)
			}
		}
		for _, k := range Kinds {
			if seen[k] == 0 {
				t.Errorf("seed %d: no %s in a 2-minute schedule: %v", seed, k, s)
			}
		}
		if total > 2*time.Minute+30*time.Second {
			t.Errorf("seed %d: schedule estimated at %s for 2 minutes", seed, total)
		}
	}
}

// A subset schedules only its kinds, and a bad name is refused.
func TestScheduleOf(t *testing.T) {
	ks, err := ParseKinds("stall, split-1|3")
	if err != nil {
		t.Fatal(err)
	}
	s := ScheduleOf(5, 2*time.Minute, 4, ks)
	if len(s) < 4 {
		t.Fatalf("%d steps", len(s))
	}
	for _, st := range s {
		if st.Kind != Stall && st.Kind != Split1v3 {
			t.Errorf("unexpected %v", st)
		}
	}
	if _, err := ParseKinds("stall,reboot"); err == nil {
		t.Errorf("unknown kind accepted")
	}
	if ks, _ := ParseKinds(""); len(ks) != len(Kinds) {
		t.Errorf("empty list gives %v", ks)
	}
}
