package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/webfarm/farm/agent/config"
	"github.com/webfarm/farm/console"
)

// apiFlags are the flags every client subcommand shares.
type apiFlags struct {
	api    string
	config string
}

func (f *apiFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.api, "api", "", "agent API URL (default: from --config's console.listen, else http://127.0.0.1:9010)")
	c.Flags().StringVar(&f.config, "config", "/etc/farm/farm.toml", "config file to take the API address from")
}

// baseURL picks the API address: the flag, else the config's listen address
// (a wildcard listen is reached on loopback), else the default.
func (f *apiFlags) baseURL() string {
	if f.api != "" {
		return strings.TrimRight(f.api, "/")
	}
	if cfg, err := config.Load(f.config); err == nil && cfg.Console.Listen != "" {
		host, port, err := net.SplitHostPort(cfg.Console.Listen)
		if err == nil {
			if host == "" || host == "0.0.0.0" || host == "::" {
				host = "127.0.0.1"
			}
			return "http://" + net.JoinHostPort(host, port)
		}
	}
	return "http://127.0.0.1:9010"
}

// call makes one API request; FARM_PASSWORD supplies the console password
// for a remote agent (loopback needs none).
func call(ctx context.Context, method, url string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return err
	}
	if pw := os.Getenv("FARM_PASSWORD"); pw != "" {
		req.SetBasicAuth("admin", pw)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the agent API (is the agent running? --api sets the address): %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
	}
	if out != nil {
		return json.Unmarshal(body, out)
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
			var raw json.RawMessage
			if err := call(cmd.Context(), http.MethodGet, f.baseURL()+"/api/v1/status", &raw); err != nil {
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
			fmt.Fprintln(w, "NODE\tID\tSTATE\tBUCKETS\tSHARE\tWEIGHT\tADDRESS")
			for _, n := range st.Nodes {
				name := n.Name
				if n.Self {
					name += " *"
				}
				fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%.1f%%\t%d\t%s\n", name, n.ID, n.State, n.Buckets, 100*n.Share, n.Weight, n.Addr)
			}
			return w.Flush()
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
			base := f.baseURL()
			if all {
				if len(args) > 0 {
					return errors.New("give node names or --all, not both")
				}
				var st console.Status
				if err := call(cmd.Context(), http.MethodGet, base+"/api/v1/status", &st); err != nil {
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
				if err := call(cmd.Context(), http.MethodPost, base+"/api/v1/nodes/"+n+"/"+action, nil); err != nil {
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
