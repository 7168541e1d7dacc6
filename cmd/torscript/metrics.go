package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/torscript/torscript/runtime"
)

// metricsAddr reads --metrics: HOST:PORT, or :PORT or PORT alone for
// 127.0.0.1:PORT (the metrics say what a policy does with the user's
// traffic: they are served on loopback unless a host is named).
func metricsAddr(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = "", s
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if _, err := net.LookupPort("tcp", port); err != nil || port == "" {
		return "", fmt.Errorf("--metrics %q: want HOST:PORT, :PORT or PORT", s)
	}
	return net.JoinHostPort(host, port), nil
}

// instanceName is the tor_instance label of the tor the flags name: its
// control address as given, or "default" when torscript looks for one.
func (f *factory) instanceName() string {
	if f.conn.control != "" {
		return f.conn.control
	}
	if a := os.Getenv("TORSCRIPT_CONTROL"); a != "" {
		return a
	}
	if f.conn.launch {
		return "launched"
	}
	return "default"
}

// serveMetrics serves Prometheus metrics on addr (--metrics) until ctx
// ends: the runtime's (runtime.NewMetrics), the script's own
// (tor.metrics), and Go's and the process's. It returns the runtime's
// metrics for runtime.Options.
func serveMetrics(ctx context.Context, f *factory, addr string) (*runtime.Metrics, error) {
	reg, err := serveMetricsRegistry(ctx, f, addr)
	if err != nil {
		return nil, err
	}
	return runtime.NewMetrics(reg, f.instanceName())
}

// serveMetricsRegistry serves a registry with Go's and the process's
// metrics on addr, for the runtimes to register theirs.
func serveMetricsRegistry(ctx context.Context, f *factory, addr string) (*prometheus.Registry, error) {
	hostPort, err := metricsAddr(addr)
	if err != nil {
		return nil, usageError{err}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ln, err := net.Listen("tcp", hostPort)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			f.log.Error("metrics server", "err", err)
		}
	}()
	context.AfterFunc(ctx, func() { srv.Close() })
	f.log.Info("metrics served", "url", "http://"+ln.Addr().String()+"/metrics")
	return reg, nil
}
