package checkers

// State is a checker's smoothed verdict.
type State int

// States of a checker.
const (
	// Unknown: not enough results yet (right after start or after a restart).
	Unknown State = iota
	// Passing: the last Rise results (at least) were successes.
	Passing
	// Failing: the last Fall results (at least) were failures.
	Failing
)

// String names the state as shown in events and status.
func (s State) String() string {
	switch s {
	case Passing:
		return "passing"
	case Failing:
		return "failing"
	default:
		return "unknown"
	}
}

// MarshalText writes the state as its name, for JSON status.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Smoother turns a stream of raw probe results into a steady state, so one
// lost probe does not take a node out of the farm and one lucky probe does
// not bring a sick one back. It is pure: no clock, no I/O.
//
// The state changes to Failing after Fall consecutive failures and to
// Passing after Rise consecutive successes. From Unknown (the initial state,
// and after Reset) the first threshold reached decides: Rise successes in a
// row make it Passing, Fall failures in a row make it Failing; mixed results
// keep it Unknown. The zero value behaves as Fall = Rise = 1.
type Smoother struct {
	// Fall and Rise are the thresholds; values below 1 count as 1.
	Fall, Rise int

	state     State
	successes int // consecutive, since the last failure
	failures  int // consecutive, since the last success
}

// Observe records one probe result and returns the state after it, and
// whether that state differs from the one before.
func (s *Smoother) Observe(pass bool) (State, bool) {
	prev := s.state
	if pass {
		s.successes++
		s.failures = 0
		if s.state != Passing && s.successes >= max(s.Rise, 1) {
			s.state = Passing
		}
	} else {
		s.failures++
		s.successes = 0
		if s.state != Failing && s.failures >= max(s.Fall, 1) {
			s.state = Failing
		}
	}
	return s.state, s.state != prev
}

// State returns the current state.
func (s *Smoother) State() State { return s.state }

// Reset forgets all results: the state is Unknown again, and the next
// decision needs Rise successes or Fall failures in a row.
func (s *Smoother) Reset() { s.state, s.successes, s.failures = Unknown, 0, 0 }
