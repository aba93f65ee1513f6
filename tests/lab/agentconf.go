package lab

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// GossipPort is the serf port every node's default config binds.
const GossipPort = 7946

// ConsoleListen is the agent API address of the default config; every node
// namespace has its own loopback, so all nodes use the same one.
const ConsoleListen = "127.0.0.1:9010"

// NodeConfig returns a reasonable agent config for node i: name web<i>, id i,
// gossip on its own address joining all the others with the lab's shared key,
// both VIPs on eth0 in vmac mode, one tcp rule on port 80 with ip affinity,
// the console on 127.0.0.1:9010 and a state dir in the run dir.
//
// extra is TOML merged over those defaults: tables merge key by key
// ("[node]\nweight = 0" keeps name and id), while a list of tables in extra
// ([[vip]], [[rule]], [[checker]]) replaces the default list; "vip = []"
// removes it. With an empty extra the text is returned as written below,
// comments and all. If extra does not parse, the defaults and extra are
// returned concatenated under a comment, so the agent's own config check
// reports the mistake.
func (l *Layout) NodeConfig(i int, extra string) string {
	n := l.Node(i)
	var join []string
	for _, o := range l.Nodes {
		if o.Index != i {
			join = append(join, strconv.Quote(netipPort(o.Addr4.String(), GossipPort)))
		}
	}
	base := fmt.Sprintf(`# Agent config for lab %[1]s node %[2]s, written by tests/lab.
state_dir = %[3]q

[node]
name = %[2]q
id = %[4]d

[gossip]
bind = %[5]q
join = [%[6]s]
key_file = %[7]q

[[vip]]
address = %[8]q
interface = %[9]q
mode = "vmac"

[[vip]]
address = %[10]q
interface = %[9]q
mode = "vmac"

[[rule]]
proto = "tcp"
ports = "80"
affinity = "ip"

[filter]
engine = %[12]q

[console]
listen = %[11]q
`, l.ID, n.Name, l.StateDir(i), n.Index,
		netipPort(n.Addr4.String(), GossipPort), strings.Join(join, ", "), l.GossipKeyPath(),
		l.VIP4.String(), n.Link, l.VIP6.String(), ConsoleListen, Engine())
	if strings.TrimSpace(extra) == "" {
		return base
	}
	merged, err := mergeTOML(base, extra)
	if err != nil {
		return base + "\n# tests/lab: extra did not parse (" + strings.ReplaceAll(err.Error(), "\n", " ") + "); appended as is\n" + extra
	}
	return merged
}

func netipPort(host string, port int) string { return host + ":" + strconv.Itoa(port) }

// EngineEnv names the environment variable that picks the data path engine
// of the lab's agents, so `make test` runs the end-to-end suite with each.
const EngineEnv = "FARM_ENGINE"

// Engine is the lab agents' engine: $FARM_ENGINE, else "kernel" (the
// agent's default).
func Engine() string {
	if e := os.Getenv(EngineEnv); e != "" {
		return e
	}
	return "kernel"
}

// mergeTOML decodes base and extra, merges extra over base (tables key by
// key, anything else replaced) and encodes the result.
func mergeTOML(base, extra string) (string, error) {
	var b, e map[string]any
	if _, err := toml.Decode(base, &b); err != nil {
		return "", fmt.Errorf("default config: %w", err)
	}
	if _, err := toml.Decode(extra, &e); err != nil {
		return "", fmt.Errorf("extra config: %w", err)
	}
	mergeMaps(b, e)
	var buf bytes.Buffer
	buf.WriteString("# Agent config written by tests/lab (defaults merged with extra).\n")
	if err := toml.NewEncoder(&buf).Encode(b); err != nil {
		return "", fmt.Errorf("encode merged config: %w", err)
	}
	return buf.String(), nil
}

func mergeMaps(dst, src map[string]any) {
	for k, v := range src {
		sm, sok := v.(map[string]any)
		dm, dok := dst[k].(map[string]any)
		if sok && dok {
			mergeMaps(dm, sm)
			continue
		}
		dst[k] = v
	}
}
