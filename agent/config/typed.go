package config

import (
	"slices"

	"github.com/webfarm/farm/checkers"
	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/vip"
)

// typed holds what the file's strings mean, as the components take it. The
// validation pass produces it (finish): each string is parsed once, by the
// parser of the package that uses the value, so `farm check` and the agent
// can never read a value differently.
type typed struct {
	vips   []vip.Config
	rules  []filter.Rule
	specs  []checkers.Spec
	weight uint32
}

// The accessors below return the typed values of a valid config: one that
// came from Parse or Load, or one built in code after SetDefaults (or
// Validate) found no problem. A config with problems, or one decoded some
// other way, has none: the slices are nil and Weight is 0. Each call returns
// a fresh slice; the PortSets inside Rules are shared and must not be
// changed.

// VIPs returns the [[vip]] sections as the vip package takes them, in file
// order.
func (c *Config) VIPs() []vip.Config { return slices.Clone(c.typed.vips) }

// Rules returns the [[rule]] sections as the filter takes them, in file
// order. Their port sets do not overlap within one protocol.
func (c *Config) Rules() []filter.Rule { return slices.Clone(c.typed.rules) }

// CheckerSpecs returns the [[checker]] sections as complete checkers.Spec
// values, in file order: every default applied (see Checker), VIP set to the
// first [[vip]] address, and a vip checker written without a target given
// that address as Target. The checkers package uses them as they are.
func (c *Config) CheckerSpecs() []checkers.Spec { return slices.Clone(c.typed.specs) }

// Weight returns node.weight with its default (DefaultWeight) applied.
func (c *Config) Weight() uint32 { return c.typed.weight }
