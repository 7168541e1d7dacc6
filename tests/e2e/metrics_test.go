package e2e

// --metrics against real tor, scraped by a real Prometheus server
// (Debian's prometheus, installed by tests/run.sh like tor).

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/torscript/torscript/cmd/torscript/testnet"
)

// freePort returns a TCP port on 127.0.0.1 nobody listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startPrometheus runs a Prometheus server that scrapes target every
// second, and returns the address of its HTTP API. It is stopped when the
// test ends.
func startPrometheus(t *testing.T, target string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("prometheus is not installed (apt-get install -y prometheus; tests/run.sh does); CI=true: failing")
		}
		t.Skip("prometheus is not installed (apt-get install -y prometheus; tests/run.sh does)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: torscript
    static_configs:
      - targets: [%q]
`, target)), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	out, _ := os.Create(filepath.Join(dir, "prometheus.log"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Logf("prometheus's log:\n%s", b)
		}
	})
	return addr
}

// promQuery asks Prometheus for the value of an instant query: the sum of
// its series, and how many series there were.
func promQuery(t *testing.T, api, query string) (sum float64, series int) {
	t.Helper()
	resp, err := http.Get("http://" + api + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if json.Unmarshal(b, &r) != nil || r.Status != "success" {
		return 0, 0
	}
	for _, x := range r.Data.Result {
		if s, ok := x.Value[1].(string); ok {
			v, _ := strconv.ParseFloat(s, 64)
			sum += v
		}
	}
	return sum, len(r.Data.Result)
}

// TestMetricsScrapedByPrometheus: a policy run with --metrics routes curl
// traffic on the private network (and refuses a mail port); Prometheus
// scrapes it, and queries through its HTTP API find the decisions, the
// stream endings by reason, the events read and the script's own counter,
// labelled with the tor instance.
func TestMetricsScrapedByPrometheus(t *testing.T) {
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	api := startPrometheus(t, metricsAddr)
	ctx, c, ev := exBegin(t, 3*time.Minute)
	port := exServer(t, "0.0.0.0:0", "metrics")
	script := writeScript(t, t.TempDir(), "metered.star", `
load("@stdlib/circuits.star", "circuits")
seen = tor.metrics.counter("streams_seen", "streams the policy was asked about", labels = ["port"])
pool = circuits.pool(size = 2)
def route(s):
    seen.inc(port = str(s.target_port))
    if s.target_port == 25:
        return tor.close("EXITPOLICY")
    return pool.pick(s)
tor.policy(route)
`)
	p := runPath(ctx, t, c, []string{"--metrics", metricsAddr}, script)
	p.waitStarted(t)
	seen := map[string]bool{}
	for _, h := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.2"} {
		exCurlOK(ctx, t, fmt.Sprintf("http://%s:%d/", h, port), "metrics "+h)
		ev.succeeded(t, ev.newStream(t, h, port, seen))
	}
	if r := exCurl(ctx, t, "http://127.0.0.4:25/"); r.err == nil {
		t.Errorf("port 25 was reached: %v", r)
	}

	want := map[string]float64{ // at least
		`sum(torscript_policy_decisions_total{action="attach"})`:                                          3,
		`sum(torscript_policy_decisions_total{action="close"})`:                                           1,
		`sum(torscript_stream_endings_total{status="CLOSED",reason="DONE"})`:                              3,
		`sum(torscript_stream_endings_total{reason="EXITPOLICY"})`:                                        1,
		`sum(torscript_events_total{type="STREAM"})`:                                                      8,
		`sum(torscript_script_streams_seen{port="` + strconv.Itoa(port) + `"})`:                           3,
		`sum(torscript_stream_attach_delay_seconds_count)`:                                                4,
		`count(torscript_policy_decisions_total{tor_instance="` + testnet.Shared(t).ControlAddr() + `"})`: 1,
	}
	deadline := time.Now().Add(60 * time.Second)
	for q, min := range want {
		for {
			got, _ := promQuery(t, api, q)
			if got >= min {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("Prometheus answers %s = %v, want at least %v", q, got, min)
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	p.finish(t)
}
