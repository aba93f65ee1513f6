package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/webfarm/farm/console"
)

// Status runs `farm status --json` in node i's namespace: the same path an
// operator uses, so the tests exercise the CLI and the API together.
func (l *Lab) Status(ctx context.Context, i int) (console.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var st console.Status
	out, err := l.Exec(ctx, l.Node(i).NS, l.FarmBin(), "status", "--json", "--config", l.AgentConfigPath(i))
	if err != nil {
		return st, fmt.Errorf("farm status on web%d: %v: %.200s", i, err, out)
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return st, fmt.Errorf("farm status on web%d: %v: %.200s", i, err, out)
	}
	return st, nil
}

// Converged checks, once, that every node in nodes reports want nodes up
// (each owning buckets), that they all agree on states and shares, and that
// none still withholds buckets it owns (a handoff or switch in progress). It
// returns what is still wrong; poll it with Poll.
func (l *Lab) Converged(ctx context.Context, nodes []int, want int) error {
	var first string
	for _, i := range nodes {
		st, err := l.Status(ctx, i)
		if err != nil {
			return err
		}
		up := 0
		var shares []string
		for _, n := range st.Nodes {
			if n.State == "up" && n.Buckets > 0 {
				up++
			}
			shares = append(shares, fmt.Sprintf("%s=%s/%d", n.Name, n.State, n.Buckets))
		}
		s := strings.Join(shares, " ")
		if up != want {
			return fmt.Errorf("web%d sees %d nodes up, want %d: %s", i, up, want, s)
		}
		if !st.Serving {
			return fmt.Errorf("web%d does not serve yet (%s)", i, st.Why)
		}
		if st.Withheld > 0 {
			return fmt.Errorf("web%d does not answer %d of its buckets yet (handoff, switch or probe in progress)", i, st.Withheld)
		}
		if first == "" {
			first = s
		} else if s != first {
			return fmt.Errorf("nodes disagree: %q vs %q", first, s)
		}
	}
	return nil
}
