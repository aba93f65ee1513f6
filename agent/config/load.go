package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Load reads, parses and validates the config file at path. The error names
// the file and every problem in it (see Parse).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		if n := len(unjoin(err)); n > 1 {
			return nil, fmt.Errorf("config %s: %d problems:\n%w", path, n, err)
		}
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a TOML config strictly, fills defaults, validates it and
// derives its typed values (VIPs, Rules, CheckerSpecs, Weight) in the same
// pass, so nothing parses the file's strings a second time.
//
// A syntax or type error stops parsing and is returned alone, with its line.
// Otherwise every unknown key (`unknown key "vip[1].adress"`, so a typo never
// silently falls back to a default) and every validation problem are returned
// together, joined with errors.Join, one per line.
//
// Defaults fill only keys absent from the file: an explicit `fall = 0` is
// reported, not replaced.
func Parse(data []byte) (*Config, error) {
	var c Config
	md, err := toml.Decode(string(data), &c)
	if err != nil {
		return nil, tomlError(data, err)
	}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, tomlError(data, err)
	}
	errs := append(unknownKeys(md), miscasedKeys(md)...)
	c.applyDefaults(presentIn(raw))
	errs = append(errs, c.finish()...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &c, nil
}

// Effective returns the config as TOML with every default filled in, so that
// `farm check` shows what the agent will actually use. Parsing it back gives
// the same config.
func (c *Config) Effective() string {
	var b bytes.Buffer
	enc := toml.NewEncoder(&b)
	enc.Indent = ""
	if err := enc.Encode(c); err != nil {
		// Only unencodable Go types fail here, and Config has none.
		return fmt.Sprintf("# cannot print the effective config: %v\n", err)
	}
	return b.String()
}

// tomlError turns the decoder's error into one line naming the line, column
// and key where decoding stopped. The position is recomputed from the byte
// offset: the decoder's own line is one too far when the error is at a
// newline, and its column is unreliable.
func tomlError(data []byte, err error) error {
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		return fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "toml: "))
	}
	line, col := pe.Position.Line, pe.Position.Col
	if off := pe.Position.Start; off >= 0 && off <= len(data) {
		before := data[:off]
		line = bytes.Count(before, []byte("\n")) + 1
		col = off - bytes.LastIndexByte(before, '\n')
	}
	msg := fmt.Sprintf("line %d, column %d: %s", line, col, pe.Message)
	if pe.LastKey != "" {
		msg += fmt.Sprintf(" (after key %q)", pe.LastKey)
	}
	return errors.New(msg)
}

// unknownKeys reports every key the decoder did not use, with array indices
// where the file uses [[table]] headers, and a suggestion when a known key is
// close. Keys under an unknown table are not listed again.
func unknownKeys(md toml.MetaData) []error {
	undecoded := map[string]bool{}
	for _, k := range md.Undecoded() {
		undecoded[k.String()] = true
	}
	if len(undecoded) == 0 {
		return nil
	}
	headers := map[string]int{} // [[table]] headers seen so far, by key
	var reported []toml.Key
	var errs []error
	for _, k := range md.Keys() {
		ks := k.String()
		if md.Type(k...) == "ArrayHash" {
			headers[ks]++
		}
		if !undecoded[ks] || under(k, reported) {
			continue
		}
		reported = append(reported, k)
		msg := fmt.Sprintf("unknown key %q", indexedKey(k, headers))
		if s := suggest(k); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		errs = append(errs, errors.New(msg))
	}
	return errs
}

// miscasedKeys reports every key the decoder matched only by ignoring case
// ("Address" for "address"): the TOML decoder is case-insensitive, but a
// file with both spellings would silently keep one of them, so keys must be
// spelled exactly.
func miscasedKeys(md toml.MetaData) []error {
	headers := map[string]int{}
	var reported []toml.Key
	var errs []error
	for _, k := range md.Keys() {
		if md.Type(k...) == "ArrayHash" {
			headers[k.String()]++
		}
		if under(k, reported) {
			continue
		}
		t := reflect.TypeOf(Config{})
		for i, part := range k {
			if t.Kind() != reflect.Struct {
				break // inside a value (an inline table of a non-struct)
			}
			f, exact := fieldByKey(t, part)
			if !exact {
				want := ""
				for j := 0; j < t.NumField(); j++ {
					if name := tomlName(t.Field(j)); strings.EqualFold(name, part) {
						want = name
					}
				}
				if want != "" {
					reported = append(reported, k[:i+1])
					errs = append(errs, fmt.Errorf("unknown key %q (keys are case-sensitive: did you mean %q?)", indexedKey(k[:i+1], headers), want))
				}
				break
			}
			t = f.Type
			if t.Kind() == reflect.Slice || t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
		}
	}
	return errs
}

// under reports whether k is inside one of the tables in parents.
func under(k toml.Key, parents []toml.Key) bool {
	for _, p := range parents {
		if len(p) < len(k) && reflect.DeepEqual([]string(p), []string(k[:len(p)])) {
			return true
		}
	}
	return false
}

// indexedKey spells k the way validation messages do: vip[1].address.
func indexedKey(k toml.Key, headers map[string]int) string {
	var b strings.Builder
	for i, part := range k {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(quoteKeyPart(part))
		if i < len(k)-1 {
			if n := headers[k[:i+1].String()]; n > 0 {
				fmt.Fprintf(&b, "[%d]", n-1)
			}
		}
	}
	return b.String()
}

func quoteKeyPart(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return strconv.Quote(s)
		}
	}
	return s
}

// suggest returns the known key closest to the last part of k, in the table k
// sits in, or "" when none is close.
func suggest(k toml.Key) string {
	t := reflect.TypeOf(Config{})
	for _, part := range k[:len(k)-1] {
		f, ok := fieldByKey(t, part)
		if !ok {
			return ""
		}
		t = f.Type
		if t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return ""
		}
	}
	want := k[len(k)-1]
	best, bestD := "", 3 // suggest only within 2 edits
	for i := 0; i < t.NumField(); i++ {
		name := tomlName(t.Field(i))
		if name == "" {
			continue
		}
		if d := editDistance(strings.ToLower(want), name); d < bestD {
			best, bestD = name, d
		}
	}
	return best
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); tomlName(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	return name
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// unjoin lists the errors inside an errors.Join, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
