package checkers

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestSmoother(t *testing.T) {
	// Results are written as a string: '+' success, '-' failure, 'R' Reset.
	// want is the state after each step: 'u' unknown, 'p' passing, 'f'
	// failing, upper case when the step changed the state.
	tests := []struct {
		name       string
		fall, rise int
		results    string
		want       string
	}{
		{"rise from unknown", 3, 2, "++", "uP"},
		{"fall from unknown", 3, 2, "---", "uuF"},
		{"mixed stays unknown", 3, 2, "+-+-+-", "uuuuuu"},
		{"one blip tolerated", 3, 2, "++-+--+", "uPppppp"},
		{"fall after passing", 3, 2, "++---", "uPppF"},
		{"interrupted fall", 3, 2, "++--+---", "uPpppppF"},
		{"rise after failing", 2, 3, "--+++", "uFffP"},
		{"interrupted rise", 2, 3, "--++-+++", "uFfffffP"},
		{"no repeat of a change", 1, 1, "++--", "PpFf"},
		{"reset forgets", 2, 2, "--R+-+", "uFuuuu"},
		{"reset then decide", 1, 2, "+-R++", "uFuuP"},
		{"zero thresholds act as one", 0, 0, "+-+", "PFP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Smoother{Fall: tt.fall, Rise: tt.rise}
			got := ""
			for _, r := range tt.results {
				var st State
				var changed bool
				if r == 'R' {
					s.Reset()
					st = s.State()
				} else {
					st, changed = s.Observe(r == '+')
				}
				c := map[State]string{Unknown: "u", Passing: "p", Failing: "f"}[st]
				if changed {
					c = string(c[0] - 'a' + 'A')
				}
				got += c
			}
			if got != tt.want {
				t.Fatalf("%s: states %s, want %s", tt.results, got, tt.want)
			}
		})
	}
}

func TestStateString(t *testing.T) {
	got := fmt.Sprint(Unknown, Passing, Failing)
	if got != "unknown passing failing" {
		t.Fatal(got)
	}
	b, err := json.Marshal(Status{Phase: PhaseStopped, Checks: []CheckStatus{{Name: "web", State: Failing}}})
	if err != nil || !strings.Contains(string(b), `"Phase":"stopped"`) || !strings.Contains(string(b), `"State":"failing"`) {
		t.Fatalf("JSON status = %s, %v", b, err)
	}
}
