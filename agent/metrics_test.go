package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"io"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
)

// The metrics answer, and the Grafana dashboard in the repository only uses
// metrics the agent exports.
func TestMetricsAndDashboard(t *testing.T) {
	n := startNode(t, testConfig(t, `
[[checker]]
name = "port"
type = "tcp"
target = "127.0.0.1:1"
action = "none"
`))
	n.waitPlan(t, "serving", servingAll)
	w := httptest.NewRecorder()
	n.a.metricsHandler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(w.Result().Body)
	text := string(body)
	for _, want := range []string{"farm_buckets_owned 4096", "farm_serving 1", `farm_members{state="up"} 1`, "farm_quorum 1",
		`farm_checker_passing{checker="port",type="tcp"}`, "farm_app_restarts", "farm_flows_established", "farm_gossip_health_score"} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	dash, err := os.ReadFile("../console/grafana/farm-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	// The fake engine has no engine metrics: those names come from their
	// descriptions.
	exported := text + strings.Join(describedNames(), "\n")
	for _, m := range regexp.MustCompile(`farm_[a-z_]+`).FindAllString(string(dash), -1) {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
		if !strings.Contains(exported, base) {
			t.Errorf("the dashboard uses %s, which the agent does not export", m)
		}
	}
}

// describedNames lists the names of every metric the collector describes.
func describedNames() []string {
	ch := make(chan *prometheus.Desc, 32)
	collector{}.Describe(ch)
	close(ch)
	var out []string
	for d := range ch {
		out = append(out, d.String())
	}
	return out
}
