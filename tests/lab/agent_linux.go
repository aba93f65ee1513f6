package lab

import (
	"fmt"
	"os"
)

// StartAgent writes configTOML to node i's config file and starts
// `<FarmBin> agent --config FILE` in the node's namespace, its output
// appended to AgentLogPath(i). It returns at once: readiness (membership,
// VIP claimed) is for the test to poll. Use NodeConfig for the config.
func (l *Lab) StartAgent(i int, configTOML string) (*Proc, error) {
	n := l.Node(i)
	if !l.HaveFarm() {
		return nil, fmt.Errorf("start agent on %s: %s is not an executable file (run make build)", n.Name, l.FarmBinary)
	}
	path := l.AgentConfigPath(i)
	if err := os.WriteFile(path, []byte(configTOML), 0o644); err != nil {
		return nil, fmt.Errorf("start agent on %s: write config: %w", n.Name, err)
	}
	return l.startProc("agent-"+n.Name, n.NS, []string{l.FarmBinary, "agent", "--config", path}, l.AgentLogPath(i), nil)
}

// StartHostProc starts args in this machine's own namespace (a helper that
// bridges the host to the lab, say) as a lab process: recorded, killed by
// Close and `farmlab down`, its output appended to logPath.
func (l *Lab) StartHostProc(name string, args []string, logPath string) (*Proc, error) {
	return l.startProc(name, "", args, logPath, nil)
}
