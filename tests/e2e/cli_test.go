package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/torscript/torscript/cmd/torscript/testnet"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// torscript returns the path of a freshly built torscript binary.
func torscript(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "torscript-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "torscript")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/torscript/torscript/cmd/torscript").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// cli prepares a torscript command connected to the network's client
// through the environment.
func cli(ctx context.Context, t *testing.T, args ...string) *exec.Cmd {
	n := testnet.Shared(t)
	cmd := exec.CommandContext(ctx, torscript(t), args...)
	cmd.Env = append(os.Environ(), "TORSCRIPT_CONTROL="+n.ControlAddr(), "TORSCRIPT_COOKIE="+n.CookiePath())
	return cmd
}

func exitStatus(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestCLIRaw(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	trace := filepath.Join(t.TempDir(), "trace")
	cmd := cli(ctx, t, "raw", "--trace", trace, "GETINFO version", "GETINFO no-such-key", "GETCONF SocksPort")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if code := exitStatus(err); code != 3 {
		t.Errorf("exit status %d, want 3 (tor answered one command with an error); stderr: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"250-version=0.", "250 OK\n", "552 ", "250 SocksPort="} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\r") {
		t.Errorf("output has CR characters")
	}

	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	tr := string(b)
	for _, want := range []string{"C: PROTOCOLINFO 1\n", "C: AUTHENTICATE [scrubbed]\n", "C: GETINFO version\n", "S: 250-version=", "S: 552 "} {
		if !strings.Contains(tr, want) {
			t.Errorf("trace lacks %q:\n%s", want, tr)
		}
	}
	cookie, err := os.ReadFile(testnet.Shared(t).CookiePath())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToLower(tr), hex.EncodeToString(cookie)[:16]) {
		t.Errorf("trace shows cookie bytes")
	}
}

// TestCLIRawStreamsEvents: after SETEVENTS, raw prints events until SIGINT.
func TestCLIRawStreamsEvents(t *testing.T) {
	ctx := testCtx(t, 90*time.Second)
	port := httpServer(t, "raw events")
	cmd := cli(ctx, t, "raw", "SETEVENTS STREAM")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || sc.Text() != "250 OK" {
		t.Fatalf("first line %q, want 250 OK; stderr %s", sc.Text(), stderr.String())
	}
	res := curl(ctx, t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	target := fmt.Sprintf(":%d ", port)
	var id string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[1] != "STREAM" {
			continue
		}
		if f[3] == "NEW" && strings.Contains(sc.Text(), target) {
			id = f[2]
		}
		if id != "" && f[2] == id && f[3] == "CLOSED" {
			break
		}
	}
	if id == "" {
		t.Fatalf("no STREAM NEW for the curl; stderr %s", stderr.String())
	}
	if r := <-res; r.err != nil {
		t.Fatal(r.err)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGINT: %v (stderr %s)", err, stderr.String())
	}
}

func TestCLIEventsJSON(t *testing.T) {
	ctx := testCtx(t, 90*time.Second)
	port := httpServer(t, "json events")
	cmd := cli(ctx, t, "events", "--json", "STREAM")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGINT); cmd.Wait() }()
	// Events flow once SETEVENTS is done; give it a moment, then curl.
	time.Sleep(500 * time.Millisecond)
	res := curl(ctx, t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	dec := json.NewDecoder(stdout)
	var id string
	for {
		// The names scripts see (stream.target_host), and when
		// torscript read the event.
		var ev struct {
			Time   time.Time `json:"time"`
			Type   string    `json:"type"`
			Raw    string    `json:"raw"`
			Fields struct {
				ID         string `json:"id"`
				Status     string `json:"status"`
				CircuitID  string `json:"circuit_id"`
				TargetHost string `json:"target_host"`
				SourceAddr string `json:"source_addr"`
				TargetPort int    `json:"target_port"`
			} `json:"fields"`
		}
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("decoding --json output: %v", err)
		}
		if ev.Type != "STREAM" || !strings.HasPrefix(ev.Raw, "650 STREAM ") || time.Since(ev.Time) > time.Minute || ev.Time.After(time.Now()) {
			t.Fatalf("event %+v", ev)
		}
		f := ev.Fields
		if f.Status == "NEW" && f.TargetPort == port {
			id = f.ID
			if f.TargetHost != "127.0.0.1" || !strings.HasPrefix(f.SourceAddr, "127.0.0.1:") {
				t.Errorf("NEW fields %+v", f)
			}
		}
		if id != "" && f.ID == id && f.Status == "SUCCEEDED" {
			if f.CircuitID == "0" || f.CircuitID == "" {
				t.Errorf("SUCCEEDED without a circuit: %+v", f)
			}
			break
		}
	}
	if r := <-res; r.err != nil {
		t.Fatal(r.err)
	}
}

// TestCLIEventsUnknown: an event type tor does not know is tor's error
// (exit 3), followed by the types tor knows.
func TestCLIEventsUnknown(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	out, err := cli(ctx, t, "events", "CIRC", "BOGUS").CombinedOutput()
	if code := exitStatus(err); code != 3 {
		t.Fatalf("exit %d, want 3:\n%s", code, out)
	}
	for _, want := range []string{`552 Unrecognized event "BOGUS"`, "tor's events are: CIRC CIRC_MINOR STREAM"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestCLILaunch(t *testing.T) {
	testnet.SkipWithoutTor(t)
	ctx := testCtx(t, 60*time.Second)
	torrc := filepath.Join(t.TempDir(), "torrc")
	if err := os.WriteFile(torrc, []byte("DisableNetwork 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, torscript(t), "raw", "--launch", "--launch-torrc", torrc, "GETINFO version", "GETCONF DisableNetwork").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), "250-version=") || !strings.Contains(string(out), "250 DisableNetwork=1") {
		t.Errorf("output:\n%s", out)
	}
}

func TestCLIConnectErrors(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	cmd := exec.CommandContext(ctx, torscript(t), "raw", "--control", "127.0.0.1:1", "GETINFO version")
	out, err := cmd.CombinedOutput()
	if code := exitStatus(err); code != 4 || !strings.Contains(string(out), "127.0.0.1:1") {
		t.Errorf("unreachable control port: exit %d, output %s", code, out)
	}
	n := testnet.Shared(t)
	cmd = exec.CommandContext(ctx, torscript(t), "raw", "--control", n.ControlAddr(), "--cookie", "/nonexistent/cookie", "GETINFO version")
	out, err = cmd.CombinedOutput()
	if code := exitStatus(err); code != 4 || !strings.Contains(string(out), "cannot read cookie file") || !strings.Contains(string(out), "SAFECOOKIE") {
		t.Errorf("missing cookie: exit %d, output %s", code, out)
	}
	cmd = exec.CommandContext(ctx, torscript(t), "raw", "--control", n.ControlAddr(), "GETINFO version\r\nSIGNAL HALT")
	cmd.Env = append(os.Environ(), "TORSCRIPT_COOKIE="+n.CookiePath())
	out, err = cmd.CombinedOutput()
	if exitStatus(err) == 0 || !strings.Contains(string(out), "unsafe argument") {
		t.Errorf("a command with CRLF inside: exit %v, output %s", err, out)
	}
}

// Without arguments, raw reads one command a line from standard input,
// skipping blank lines and comments.
func TestCLIRawStdin(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	cmd := cli(ctx, t, "raw")
	cmd.Stdin = strings.NewReader("# a comment\nGETINFO version\n\nGETCONF ControlPort\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "250-version=0.") || lines[1] != "250 OK" || !strings.HasPrefix(lines[2], "250 ControlPort=") {
		t.Errorf("output:\n%s", out)
	}
}

// TestCLIJSON: --json on raw, eval and testnet status prints JSON objects
// with a time and the names scripts see (snake_case), against real tor.
func TestCLIJSON(t *testing.T) {
	n := testnet.Shared(t)
	ctx := testCtx(t, time.Minute)

	out, err := cli(ctx, t, "raw", "--json", "GETINFO version", "GETINFO no-such-key").Output()
	if exitStatus(err) != 3 {
		t.Errorf("raw with a 552 reply: %v, want exit status 3", err)
	}
	type reply struct {
		Time    string `json:"time"`
		Command string `json:"command"`
		Status  int    `json:"status"`
		Lines   []struct {
			Code int    `json:"code"`
			Sep  string `json:"sep"`
			Text string `json:"text"`
		} `json:"lines"`
	}
	var replies []reply
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r reply
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("raw --json line %q: %v", l, err)
		}
		replies = append(replies, r)
	}
	if len(replies) != 2 || replies[0].Status != 250 || replies[0].Command != "GETINFO version" ||
		len(replies[0].Lines) != 2 || !strings.HasPrefix(replies[0].Lines[0].Text, "version=0.4") || replies[0].Time == "" ||
		replies[1].Status != 552 || !strings.Contains(replies[1].Lines[0].Text, "no-such-key") {
		t.Errorf("raw --json printed:\n%s", out)
	}

	out, err = cli(ctx, t, "eval", "--json", `tor.circuits(status = "BUILT")`).Output()
	if err != nil {
		t.Fatalf("eval --json: %v", err)
	}
	var val struct {
		Time  string `json:"time"`
		Value []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
			Path   []struct {
				Fingerprint string `json:"fingerprint"`
				Nickname    string `json:"nickname"`
			} `json:"path"`
			BuildFlags []string `json:"build_flags"`
		} `json:"value"`
	}
	if err := json.Unmarshal(out, &val); err != nil {
		t.Fatalf("eval --json: %v: %s", err, out)
	}
	if val.Time == "" || len(val.Value) == 0 || val.Value[0].ID == "" || val.Value[0].Status != "BUILT" ||
		len(val.Value[0].Path) == 0 || len(val.Value[0].Path[0].Fingerprint) != 40 {
		t.Errorf("eval --json printed %s", out)
	}

	out, err = exec.CommandContext(ctx, torscript(t), "testnet", "status", "--json", "--dir", n.Dir).Output()
	if err != nil {
		t.Fatalf("testnet status --json: %v", err)
	}
	var st struct {
		Time   string `json:"time"`
		Up     bool   `json:"up"`
		Client struct {
			Control string `json:"control"`
		} `json:"client"`
		Nodes []struct {
			Name  string `json:"name"`
			Role  string `json:"role"`
			Alive bool   `json:"alive"`
			PID   int    `json:"pid"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("testnet status --json: %v: %s", err, out)
	}
	if !st.Up || st.Time == "" || st.Client.Control != n.ControlAddr() || len(st.Nodes) != len(n.Nodes) || !st.Nodes[0].Alive || st.Nodes[0].PID == 0 {
		t.Errorf("testnet status --json printed %s", out)
	}
}
