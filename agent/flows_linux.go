package agent

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"

	"github.com/webfarm/farm/filter"
)

// countFlows counts conntrack entries carrying this node's mark towards the
// VIPs that still carry traffic (TCP established, or any UDP flow). It shells
// out to conntrack(8): a drain polls it twice a second at most.
func countFlows(ctx context.Context, self uint8, vips []netip.Addr) (int, error) {
	mark := fmt.Sprintf("0x%x", filter.Mark(self))
	total := 0
	for _, v := range vips {
		fam := "ipv4"
		if v.Is6() {
			fam = "ipv6"
		}
		for _, args := range [][]string{
			{"-L", "-f", fam, "-p", "tcp", "--state", "ESTABLISHED", "-d", v.String(), "-m", mark},
			{"-L", "-f", fam, "-p", "udp", "-d", v.String(), "-m", mark},
		} {
			var out, errb bytes.Buffer
			cmd := exec.CommandContext(ctx, "conntrack", args...)
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Run(); err != nil {
				return 0, fmt.Errorf("conntrack %v: %w: %s", args, err, bytes.TrimSpace(errb.Bytes()))
			}
			total += bytes.Count(out.Bytes(), []byte("\n"))
		}
	}
	return total, nil
}
