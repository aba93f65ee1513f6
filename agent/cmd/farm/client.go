package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/webfarm/farm/agent/config"
	"github.com/webfarm/farm/console"
	"github.com/webfarm/farm/farm/view"
)

// apiFlags are the flags every client subcommand shares.
type apiFlags struct {
	api       string
	config    string
	tokenFile string
}

func (f *apiFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.api, "api", "", "agent API URL (default: from --config's console.listen, else http://127.0.0.1:9010)")
	c.Flags().StringVar(&f.config, "config", "/etc/farm/farm.toml", "the node's config: the API address, its TLS certificate and the API token in its state_dir")
	c.Flags().StringVar(&f.tokenFile, "token-file", "", "file holding the API token (default: $FARM_TOKEN, else state_dir/api.token from --config)")
}

// client is how a subcommand reaches the agent API.
type client struct {
	base  string
	token string
	http  *http.Client
}

// client resolves the API address, the token and the TLS trust from the
// flags, the environment and the node's config.
func (f *apiFlags) client() (*client, error) {
	cfg, cfgErr := config.Load(f.config)
	c := &client{base: "http://127.0.0.1:9010", http: &http.Client{Timeout: 15 * time.Second}}
	if cfgErr == nil && cfg.Console.Listen != "" {
		host, port, err := net.SplitHostPort(cfg.Console.Listen)
		if err == nil {
			if host == "" || host == "0.0.0.0" || host == "::" {
				host = "127.0.0.1"
			}
			scheme := "http"
			if cfg.Console.TLSCert != "" {
				scheme = "https"
				pinned, err := pinnedTLS(cfg.Console.TLSCert)
				if err != nil {
					return nil, err
				}
				c.http.Transport = &http.Transport{TLSClientConfig: pinned}
			}
			c.base = scheme + "://" + net.JoinHostPort(host, port)
		}
	}
	if f.api != "" {
		c.base = strings.TrimRight(f.api, "/")
	}
	switch {
	case f.tokenFile != "":
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		c.token = strings.TrimSpace(string(b))
	case os.Getenv("FARM_TOKEN") != "":
		c.token = strings.TrimSpace(os.Getenv("FARM_TOKEN"))
	case cfgErr == nil:
		path := filepath.Join(cfg.StateDir, console.TokenFile)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read the API token %s: %w (run as root on the node, or give --token-file or FARM_TOKEN)", path, err)
		}
		c.token = strings.TrimSpace(string(b))
	default:
		return nil, fmt.Errorf("no API token: %v; give --config FILE of the node, --token-file or FARM_TOKEN", cfgErr)
	}
	return c, nil
}

// pinnedTLS trusts exactly the console's own (self-signed) certificate,
// whatever names it carries.
func pinnedTLS(certFile string) (*tls.Config, error) {
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("console.tls_cert: %w", err)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("console.tls_cert %s: no PEM certificate", certFile)
	}
	want := block.Bytes
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the pin below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !bytes.Equal(raw[0], want) {
				return errors.New("the console's certificate is not the one in console.tls_cert")
			}
			return nil
		},
	}, nil
}

// call makes one API request with the token; body, when not nil, is sent as
// JSON.
func (c *client) call(ctx context.Context, method, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the agent API at %s (is the agent running? --api sets the address): %w", c.base, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func statusCmd() *cobra.Command {
	var f apiFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Show every node of the farm, its state and its share",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := c.call(cmd.Context(), http.MethodGet, "/api/v1/status", nil, &raw); err != nil {
				return err
			}
			if asJSON {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), string(raw))
				return err
			}
			var st console.Status
			if err := json.Unmarshal(raw, &st); err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NODE\tID\tSTATE\tBUCKETS\tSHARE\tWEIGHT\tFLOWS\tCHECKERS\tADDRESS")
			for _, n := range st.Nodes {
				name := n.Name
				if n.Self {
					name += " *"
				}
				flows, checks := "-", "-"
				if d := n.Detail; d != nil {
					if d.Flows >= 0 {
						flows = fmt.Sprint(d.Flows)
					}
					var cs []string
					for _, c := range d.Checkers {
						cs = append(cs, c.Name+":"+c.State)
					}
					if len(cs) > 0 {
						checks = strings.Join(cs, ",")
					}
				}
				fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%.1f%%\t%d\t%s\t%s\t%s\n", name, n.ID, n.State, n.Buckets, 100*n.Share, n.Weight, flows, checks, n.Addr)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if !st.Quorum {
				fmt.Fprintln(cmd.OutOrStdout(), "\nThis node has no quorum: it serves nobody until it sees a majority of the farm.")
			}
			for _, wn := range st.Warnings {
				fmt.Fprintf(cmd.OutOrStdout(), "\nWARNING %s: %s\n", wn.Node, wn.Text)
			}
			return nil
		},
	}
	f.register(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON")
	return c
}

func actionCmd(action, short string) *cobra.Command {
	var f apiFlags
	var all bool
	c := &cobra.Command{
		Use:   action + " NODE... | --all",
		Short: short,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			if all {
				if len(args) > 0 {
					return errors.New("give node names or --all, not both")
				}
				var st console.Status
				if err := c.call(cmd.Context(), http.MethodGet, "/api/v1/status", nil, &st); err != nil {
					return err
				}
				for _, n := range st.Nodes {
					if n.State != "down" {
						args = append(args, n.Name)
					}
				}
			}
			if len(args) == 0 {
				return errors.New("name at least one node, or --all")
			}
			var errs []error
			for _, n := range args {
				if err := c.call(cmd.Context(), http.MethodPost, "/api/v1/nodes/"+url.PathEscape(n)+"/"+action, nil, nil); err != nil {
					errs = append(errs, fmt.Errorf("%s %s: %w", action, n, err))
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s requested\n", n, action)
			}
			return errors.Join(errs...)
		},
	}
	f.register(c)
	c.Flags().BoolVar(&all, "all", false, "act on every reachable node")
	return c
}

func planCmd() *cobra.Command {
	var f apiFlags
	var weight, id int
	c := &cobra.Command{
		Use:   "plan NODE stop|drain|start|weight|add|remove",
		Short: "Show what a change would move (buckets, from whom to whom) before making it; changes nothing",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			ch := view.Change{Node: args[0], Action: args[1]}
			if cmd.Flags().Changed("weight") {
				if weight < 0 {
					return errors.New("--weight must be 0..1000")
				}
				w := uint32(weight)
				ch.Weight = &w
			}
			if args[1] == "add" {
				if id < 1 || id > 250 {
					return errors.New("add needs --id 1..250, the new node's id")
				}
				ch.ID = uint8(id)
			}
			var res view.WhatIf
			if err := c.call(cmd.Context(), http.MethodPost, "/api/v1/plan", ch, &res); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s %s would move %d of 4096 buckets (%.1f%%):\n", ch.Node, ch.Action, res.Moved, 100*res.Share)
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "FROM\tTO\tBUCKETS")
			for _, m := range res.Moves {
				fmt.Fprintf(w, "%s\t%s\t%d\n", orNobody(m.From), orNobody(m.To), m.Buckets)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "\nNODE\tBEFORE\tAFTER")
			names := map[string]bool{}
			for n := range res.Before {
				names[n] = true
			}
			for n := range res.After {
				names[n] = true
			}
			for _, n := range slices.Sorted(maps.Keys(names)) {
				fmt.Fprintf(w, "%s\t%d\t%d\n", n, res.Before[n], res.After[n])
			}
			return w.Flush()
		},
	}
	f.register(c)
	c.Flags().IntVar(&weight, "weight", 0, "the new weight (weight, add)")
	c.Flags().IntVar(&id, "id", 0, "the new node's id (add)")
	return c
}

func orNobody(s string) string {
	if s == "" {
		return "(nobody)"
	}
	return s
}
