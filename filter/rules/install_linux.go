package rules

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// ipt names the tools of one iptables family.
type ipt struct {
	v6      bool
	list    string // iptables or ip6tables
	restore string // iptables-restore or ip6tables-restore
}

var families = []ipt{
	{v6: false, list: "iptables", restore: "iptables-restore"},
	{v6: true, list: "ip6tables", restore: "ip6tables-restore"},
}

// Install puts the spec's rules in place, replacing any previous farm rules
// (it is safe to call again with a new spec). The nftables tables go first,
// in one transaction that also removes a kernel engine's leftover
// GuardTable, then the iptables and ip6tables chains; if a later step
// fails, everything installed is removed again and the error says why. A
// caller whose Install failed must not claim the VIP: without the rules
// this node would accept every client.
func Install(ctx context.Context, s Spec) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("install farm rules: %w", err)
	}
	if _, err := run(ctx, NFT(s)+nftRemoveGuard(), "nft", "-f", "-"); err != nil {
		return fmt.Errorf("install farm rules: nftables: %w", err)
	}
	for _, f := range families {
		var err error
		if len(s.vips(f.v6)) > 0 {
			err = f.install(ctx, s)
		} else {
			err = f.remove(ctx) // a family whose VIPs went away
		}
		if err != nil {
			if uerr := Remove(ctx); uerr != nil {
				return fmt.Errorf("install farm rules: %w (and undoing it failed: %v; run `farm cleanup`)", err, uerr)
			}
			return fmt.Errorf("install farm rules: %w (rules removed again)", err)
		}
	}
	return nil
}

// SetReset opens (on) or closes (off) the reset window: while it is open,
// new TCP packets to the spec's VIPs and balanced ports that are not a bare
// SYN and belong to no flow of a farm node here (on a node that just took
// over a dead node's buckets: that node's orphaned flows, and the other
// live nodes' flows) are queued to the engine, which resets the orphans
// (filter.Verdict Reset) and drops the rest. Closed, such packets are
// dropped in the kernel, as the engine would only drop them too.
//
// It changes the reset_vips sets of the tables Install created, in one nft
// transaction; call it after Install with the same spec (an Install closes
// the window: open it again if it should stay open). Pair it with the
// decider's takeover set: filter.Decider.SetTakeover then SetReset(on) to
// open, SetReset(off) then SetTakeover(nil) to close. The window costs
// throughput (see package filter): keep it short.
func SetReset(ctx context.Context, s Spec, on bool) error {
	what := "close"
	if on {
		what = "open"
	}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("%s the reset window: %w", what, err)
	}
	if _, err := run(ctx, NFTReset(s, on), "nft", "-f", "-"); err != nil {
		return fmt.Errorf("%s the reset window: nftables: %w (were the rules installed with this spec?)", what, err)
	}
	return nil
}

// Remove deletes every rule, chain and table Install creates, and the
// kernel engine's GuardTable. It is idempotent: what is already gone is not
// an error. It never flushes the whole ruleset, which would also wipe the
// iptables-nft tables of others.
func Remove(ctx context.Context) error {
	if err := remove(ctx, nftRemove()+nftRemoveGuard(), false); err != nil {
		return fmt.Errorf("remove farm rules: %w", err)
	}
	return nil
}

// RemoveNFQueue deletes what Install creates (the NFQUEUE engine's iptables
// chains and nftables tables) and nothing else. The kernel engine calls it
// when it starts: rules a crashed NFQUEUE engine left would queue every new
// flow to a queue nobody reads. Idempotent; without the nft and iptables
// tools there is nothing Install could have made, which is not an error.
func RemoveNFQueue(ctx context.Context) error {
	if err := remove(ctx, nftRemove(), true); err != nil {
		return fmt.Errorf("remove NFQUEUE engine rules: %w", err)
	}
	return nil
}

// remove deletes the iptables chains, then runs the nft script that deletes
// tables; a missing nft tool is an error unless nftOptional.
func remove(ctx context.Context, nftScript string, nftOptional bool) error {
	var errs []error
	// Stop queueing first, then stop deciding by mark.
	for _, f := range families {
		if err := f.remove(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := run(ctx, nftScript, "nft", "-f", "-"); err != nil && !(nftOptional && errors.Is(err, exec.ErrNotFound)) {
		errs = append(errs, fmt.Errorf("nftables: %w", err))
	}
	return errors.Join(errs...)
}

// Cleanup removes whatever a crashed agent may have left: every table and
// chain this package has ever created and the kernel engine's GuardTable
// (today the same set as Remove; the kernel engine's OwnedTable never
// outlives its agent). Run it before the first Install and from `farm
// cleanup`; it is idempotent.
func Cleanup(ctx context.Context) error {
	if err := Remove(ctx); err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	return nil
}

func (f ipt) state(ctx context.Context) (chainState, error) {
	out, err := run(ctx, "", f.list, "-w", "5", "-t", "mangle", "-S")
	if err != nil {
		return chainState{}, err
	}
	return parseChainState(out), nil
}

func (f ipt) install(ctx context.Context, s Spec) error {
	st, err := f.state(ctx)
	if err != nil {
		return err
	}
	text := IPTables(s, f.v6)
	if st.jumps == 0 {
		text = withJump(text)
	}
	if _, err := run(ctx, text, f.restore, "--wait=5", "--noflush"); err != nil {
		return err
	}
	return nil
}

func (f ipt) remove(ctx context.Context) error {
	st, err := f.state(ctx)
	if errors.Is(err, exec.ErrNotFound) {
		return nil // never installed: the tool is not even there
	}
	if err != nil {
		return err
	}
	text := iptRemove(st)
	if text == "" {
		return nil
	}
	_, err = run(ctx, text, f.restore, "--wait=5", "--noflush")
	return err
}

// run executes a tool with stdin and returns its stdout; the error carries
// the command and its stderr, which is where these tools explain themselves.
func run(ctx context.Context, stdin, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = "no error output"
		}
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.String(), nil
}

// nftRemoveGuard is the script that removes the kernel engine's persistent
// tables (GuardTable), whether present or not. It never names OwnedTable:
// the kernel refuses that table to every socket but its engine's, which
// would fail the whole script while a kernel engine runs.
func nftRemoveGuard() string {
	return fmt.Sprintf("table ip %[1]s {}\ndelete table ip %[1]s\ntable ip6 %[1]s {}\ndelete table ip6 %[1]s\n", GuardTable)
}
