package main

import "strings"

// fastGossip is the faster failure-detection setting compared with the
// defaults (probe_interval 200ms, probe_timeout 100ms, suspicion_mult 2).
const fastGossip = "[gossip]\nprobe_interval = \"100ms\"\nprobe_timeout = \"50ms\"\n"

// settingLabel names a setting in the tables: its TOML on one line.
func settingLabel(extra string) string {
	if strings.TrimSpace(extra) == "" {
		return "defaults"
	}
	var parts []string
	for _, line := range strings.Split(extra, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			parts = append(parts, strings.ReplaceAll(line, " ", ""))
		}
	}
	return strings.Join(parts, " ")
}
