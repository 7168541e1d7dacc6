//go:build linux

package main

import (
	"bufio"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestPssCountsSharedPagesOnce: this test binary and a child running it
// too share the binary's pages, which their VmRSS count once in each and
// their Pss once in all; memMiB adds up the tree.
func TestPssCountsSharedPagesOnce(t *testing.T) {
	child := exec.Command(os.Args[0], "-test.run", "^TestPssSleeper$")
	child.Env = append(os.Environ(), "BENCH_PSS_SLEEPER=1")
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "asleep\n" {
		t.Fatalf("child said %q, %v", line, err)
	}
	self := os.Getpid()
	pss, err := memMiB(self, "Pss")
	if err != nil {
		t.Fatal(err)
	}
	rss, err := memMiB(self, "VmRSS")
	if err != nil {
		t.Fatal(err)
	}
	pssSelf, _ := memMiB1(self, "Pss")
	pssChild, err := memMiB1(child.Process.Pid, "Pss")
	if err != nil {
		t.Fatal(err)
	}
	if pssSelf <= 0 || pssChild <= 0 || pss < pssSelf+pssChild/2 {
		t.Fatalf("Pss of the tree %.2f MiB; this process's %.2f, the child's %.2f", pss, pssSelf, pssChild)
	}
	if pss >= rss {
		t.Fatalf("Pss of the two %.2f MiB, VmRSS of the two %.2f: shared pages counted twice", pss, rss)
	}
	t.Logf("two processes of this binary: Pss %.1f MiB, VmRSS %.1f MiB", pss, rss)
}

// TestPssSleeper is TestPssCountsSharedPagesOnce's child.
func TestPssSleeper(t *testing.T) {
	if os.Getenv("BENCH_PSS_SLEEPER") == "" {
		t.Skip("the child of TestPssCountsSharedPagesOnce")
	}
	os.Stdout.WriteString("asleep\n")
	time.Sleep(10 * time.Second)
}
