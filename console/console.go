// Package console serves the farm's HTTP API (and, later, its web console)
// on the address in [console] listen. Any node can act on any node: the API
// forwards an action to the named node through the farm (serf query).
//
// Access: requests from a loopback address are trusted (the CLI on the node
// itself); every request from anywhere else needs the console password
// (HTTP basic auth, checked against a bcrypt hash). Without a password file,
// non-loopback requests are refused outright.
package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// NodeStatus is one node in `farm status --json`.
type NodeStatus struct {
	Name    string  `json:"name"`
	ID      int     `json:"id"`
	State   string  `json:"state"`
	Buckets int     `json:"buckets"`
	Share   float64 `json:"share"`
	Weight  int     `json:"weight"`
	Addr    string  `json:"addr"`
	Self    bool    `json:"self,omitempty"`
}

// Status is the farm as this node sees it.
type Status struct {
	Nodes   []NodeStatus `json:"nodes"`
	Buckets int          `json:"buckets"`
	Self    string       `json:"self"`
	// Quorum is false when the answering node is on the minority side of a
	// partition and serves nobody.
	Quorum bool      `json:"quorum"`
	Time   time.Time `json:"time"`
}

// ErrNoSuchNode is returned by Farm.Act for a name the farm does not know.
var ErrNoSuchNode = errors.New("no such node")

// Farm is what the API needs from the agent.
type Farm interface {
	Status() Status
	// Act applies action (stop, start, drain) to the named node, wherever it is.
	Act(ctx context.Context, node, action string) error
	// Events returns up to limit recent events, newest last, JSON-encodable.
	Events(limit int) any
}

// Server is the API server.
type Server struct {
	listen string
	hash   []byte // bcrypt; nil = loopback only
	farm   Farm
	log    *slog.Logger
}

// New prepares the server; passwordFile may be empty when listen is loopback.
func New(listen, passwordFile string, farm Farm, log *slog.Logger) (*Server, error) {
	s := &Server{listen: listen, farm: farm, log: log}
	if passwordFile != "" {
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			return nil, fmt.Errorf("console.password_file: %w", err)
		}
		h := []byte(strings.TrimSpace(string(b)))
		if _, err := bcrypt.Cost(h); err != nil {
			return nil, fmt.Errorf("console.password_file %s: not a bcrypt hash (farm passwd makes one): %w", passwordFile, err)
		}
		s.hash = h
	}
	return s, nil
}

// Handler returns the API's routes with access control applied.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.farm.Status())
	})
	mux.HandleFunc("GET /api/v1/events", func(w http.ResponseWriter, r *http.Request) {
		limit := 200
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 10000 {
				writeError(w, http.StatusBadRequest, "limit must be 1..10000")
				return
			}
			limit = n
		}
		writeJSON(w, http.StatusOK, map[string]any{"events": s.farm.Events(limit)})
	})
	mux.HandleFunc("POST /api/v1/nodes/{name}/{action}", func(w http.ResponseWriter, r *http.Request) {
		name, action := r.PathValue("name"), r.PathValue("action")
		switch action {
		case "stop", "start", "drain":
		default:
			writeError(w, http.StatusNotFound, fmt.Sprintf("unknown action %q (stop, start, drain)", action))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		err := s.farm.Act(ctx, name, action)
		switch {
		case errors.Is(err, ErrNoSuchNode):
			writeError(w, http.StatusNotFound, err.Error())
		case err != nil:
			writeError(w, http.StatusBadGateway, err.Error())
		default:
			s.log.Info("Action applied.", "node", name, "action", action, "from", r.RemoteAddr)
			writeJSON(w, http.StatusOK, map[string]string{"node": name, "action": action, "result": "ok"})
		}
	})
	return s.auth(mux)
}

// auth lets loopback clients through and asks everyone else for the password.
// Failed attempts are slowed down to make guessing expensive.
func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isLoopback(r.RemoteAddr) {
			next.ServeHTTP(w, r)
			return
		}
		if s.hash == nil {
			writeError(w, http.StatusForbidden, "this console has no password file: only loopback clients are served")
			return
		}
		_, pass, ok := r.BasicAuth()
		if !ok || bcrypt.CompareHashAndPassword(s.hash, []byte(pass)) != nil {
			time.Sleep(500 * time.Millisecond)
			s.log.Warn("Console login refused.", "from", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Basic realm="farm"`)
			writeError(w, http.StatusUnauthorized, "password required")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.listen)
	if err != nil {
		return fmt.Errorf("console.listen %s: %w", s.listen, err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	s.log.Info("Console listening.", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	case err := <-errc:
		return fmt.Errorf("console: %w", err)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
