package config

import (
	"time"

	"github.com/webfarm/farm/checkers"
	"github.com/webfarm/farm/checkers/script"
	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/vip"
)

// Defaults and limits that belong to the config. Facts owned by another
// package are used from there, not copied: checker defaults and limits from
// checkers (DefaultInterval, MinInterval, DefaultFall, DefaultRise,
// DefaultExpect, DefaultMaxRestarts, DefaultWindow), the script timeout
// from checkers/script, the largest node id from farm/table (MaxID), the
// default VIP mode and affinity from the zero values of vip.Mode and
// filter.Affinity.
const (
	// DefaultWeight gives every node the same share unless told otherwise.
	DefaultWeight = 100
	// DefaultResetWindow matches common keep-alive timeouts (nginx 75s,
	// Apache 5s, IIS 120s) only partly: long enough for busy clients,
	// short enough that the queue carries foreign traffic only briefly.
	DefaultResetWindow = 30 * time.Second
	// DefaultHandoffDelay covers gossip's spread to every node with a
	// wide margin (typically under 100 ms in a LAN).
	DefaultHandoffDelay = 300 * time.Millisecond
	// DefaultSwitchLead leaves gossip 200 ms past the handoff delay to
	// reach every node before a planned switch.
	DefaultSwitchLead = 500 * time.Millisecond
	// DefaultSwitchMargin covers NTP-synchronized clocks on a LAN (skews
	// of a millisecond or less) with room.
	DefaultSwitchMargin = 5 * time.Millisecond
	// DefaultDrainTimeout ends a drain whose clients keep connections open
	// for ever (long polling, websockets).
	DefaultDrainTimeout = 5 * time.Minute
	// MaxWeight bounds weights so shares stay computable without overflow
	// and a typo (10000 for 100) is caught.
	MaxWeight = 1000

	// DefaultRetryInterval is the pause between gossip join attempts.
	DefaultRetryInterval = 2 * time.Second
	// DefaultProbeInterval is short so a dead node is noticed well within 1 s.
	DefaultProbeInterval = 100 * time.Millisecond
	// DefaultProbeTimeout is how long a gossip probe waits for its ack.
	DefaultProbeTimeout = 50 * time.Millisecond
	// DefaultSuspicionMult keeps the suspicion window short (fast failover)
	// at the cost of tolerance to slow peers.
	DefaultSuspicionMult = 2

	// DefaultQueue is the first NFQUEUE number; chosen away from 0 so it does
	// not collide with other NFQUEUE users that take the default.
	DefaultQueue = 4200
	// DefaultQueues is one reader: SYNs only, so one is plenty for most farms.
	DefaultQueues = 1
	// MaxQueues bounds the reader goroutines sharing the SYNs.
	MaxQueues = 16

	// DefaultEngine is the engine that decides new flows.
	DefaultEngine = "kernel"
	// DefaultLogFormat and DefaultLogLevel: readable text at info.
	DefaultLogFormat = "text"
	DefaultLogLevel  = "info"

	// DefaultConsoleListen keeps the console on loopback, where it needs no
	// password.
	DefaultConsoleListen = "127.0.0.1:9010"
	// DefaultStateDir is where state that outlives a restart is kept.
	DefaultStateDir = "/var/lib/farm"
)

// defaultAction is the action of a checker written without one. A restart
// cannot bring a link or an address back, so interface and vip checkers
// wait; without both scripts there is nothing to restart with, so every
// checker waits (out of the farm while failing, back when passing). This
// keeps every default valid: validation refuses restart without scripts.
func defaultAction(typ string, app App) string {
	if typ == checkers.TypeInterface || typ == checkers.TypeVIP || app.Start == "" || app.Stop == "" {
		return checkers.ActionWait
	}
	return checkers.ActionRestart
}

// given reports whether the key at path (strings for table keys, ints for
// array indices) was written in the file. A nil given means "treat the zero
// value as unset", for configs built in code.
type given func(path ...any) bool

// SetDefaults fills every field left at its zero value with its default,
// then derives the typed values (VIPs, Rules, CheckerSpecs, Weight) as Parse
// does, so a config built in code is as usable as a parsed one. It reports
// nothing: call Validate for the problems (the typed values are empty while
// there are any). Parse instead fills only the keys absent from the file, so
// that an explicit `fall = 0` is reported rather than replaced.
func (c *Config) SetDefaults() {
	c.applyDefaults(nil)
	c.finish()
}

// fill sets *p to v when the key is unset (see given).
func fill[T comparable](p *T, v T, set given, path ...any) {
	if set != nil {
		if !set(path...) {
			*p = v
		}
		return
	}
	var zero T
	if *p == zero {
		*p = v
	}
}

func (c *Config) applyDefaults(set given) {
	if c.Node.Weight == nil {
		w := DefaultWeight
		c.Node.Weight = &w
	}

	fill(&c.Node.DrainTimeout, Duration{DefaultDrainTimeout}, set, "node", "drain_timeout")

	g := &c.Gossip
	fill(&g.RetryInterval, Duration{DefaultRetryInterval}, set, "gossip", "retry_interval")
	fill(&g.ProbeInterval, Duration{DefaultProbeInterval}, set, "gossip", "probe_interval")
	fill(&g.ProbeTimeout, Duration{DefaultProbeTimeout}, set, "gossip", "probe_timeout")
	fill(&g.SuspicionMult, DefaultSuspicionMult, set, "gossip", "suspicion_mult")
	fill(&g.HandoffDelay, Duration{DefaultHandoffDelay}, set, "gossip", "handoff_delay")
	fill(&g.SwitchLead, Duration{DefaultSwitchLead}, set, "gossip", "switch_lead")
	fill(&g.SwitchMargin, Duration{DefaultSwitchMargin}, set, "gossip", "switch_margin")

	for i := range c.VIP {
		fill(&c.VIP[i].Mode, vip.ModeVMAC.String(), set, "vip", i, "mode")
	}
	for i := range c.Rule {
		fill(&c.Rule[i].Affinity, filter.AffinityIP.String(), set, "rule", i, "affinity")
	}

	fill(&c.Filter.Queue, DefaultQueue, set, "filter", "queue")
	fill(&c.Filter.Queues, DefaultQueues, set, "filter", "queues")
	fill(&c.Filter.ResetWindow, Duration{DefaultResetWindow}, set, "filter", "reset_window")

	fill(&c.App.Timeout, Duration{script.DefaultTimeout}, set, "app", "timeout")
	fill(&c.App.MaxRestarts, checkers.DefaultMaxRestarts, set, "app", "max_restarts")
	fill(&c.App.RestartWindow, Duration{checkers.DefaultWindow}, set, "app", "restart_window")

	for i := range c.Checker {
		k := &c.Checker[i]
		fill(&k.Interval, Duration{checkers.DefaultInterval}, set, "checker", i, "interval")
		fill(&k.Timeout, Duration{k.Interval.Duration / 2}, set, "checker", i, "timeout")
		fill(&k.Fall, checkers.DefaultFall, set, "checker", i, "fall")
		fill(&k.Rise, checkers.DefaultRise, set, "checker", i, "rise")
		fill(&k.Action, defaultAction(k.Type, c.App), set, "checker", i, "action")
		if k.Type == checkers.TypeHTTP {
			fill(&k.Expect, checkers.DefaultExpect, set, "checker", i, "expect")
		}
	}

	fill(&c.Console.Listen, DefaultConsoleListen, set, "console", "listen")
	fill(&c.Filter.Engine, DefaultEngine, set, "filter", "engine")
	fill(&c.Log.Format, DefaultLogFormat, set, "log", "format")
	fill(&c.Log.Level, DefaultLogLevel, set, "log", "level")
	fill(&c.StateDir, DefaultStateDir, set, "state_dir")
}

// presentIn returns a given that looks keys up in the generic decoding of
// the file (tables as maps, arrays of tables as slices).
func presentIn(raw map[string]any) given {
	return func(path ...any) bool {
		var cur any = raw
		for _, p := range path {
			switch k := p.(type) {
			case string:
				m, ok := cur.(map[string]any)
				if !ok {
					return false
				}
				if cur, ok = m[k]; !ok {
					return false
				}
			case int:
				switch s := cur.(type) {
				case []map[string]any:
					if k >= len(s) {
						return false
					}
					cur = s[k]
				case []any:
					if k >= len(s) {
						return false
					}
					cur = s[k]
				default:
					return false
				}
			default:
				return false
			}
		}
		return true
	}
}
