# Sourced by tests/demo.sh and tests/run.sh: makes sure tor, tor-gencert,
# curl and tmux (the REPL's end-to-end tests drive it in a terminal) are
# installed, and with SETUP_PROMETHEUS=1 (tests/run.sh) Prometheus's
# server, which scrapes a policy's --metrics in the end-to-end tests;
# Debian's packages are installed when running as root.
need=()
if [ "${SETUP_PROMETHEUS:-}" = 1 ] && ! command -v prometheus >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		need+=(prometheus)
	else
		# Only TestMetricsScrapedByPrometheus needs it: it skips without
		# it (and fails with CI=true, which runs as root).
		echo "setup: prometheus is not installed; the metrics end-to-end test will be skipped (sudo apt-get install -y prometheus)" >&2
	fi
fi
command -v tor >/dev/null 2>&1 || need+=(tor)
command -v tor-gencert >/dev/null 2>&1 || need+=(tor)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
if [ ${#need[@]} -gt 0 ]; then
	pkgs=$(printf '%s\n' "${need[@]}" | sort -u | tr '\n' ' ')
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "setup: installing ${pkgs}from Debian's packages" >&2
		apt-get update -qq >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null
	else
		echo "setup: missing packages: ${pkgs}(install them with: sudo apt-get install -y ${pkgs})" >&2
		exit 1
	fi
fi
command -v go >/dev/null 2>&1 || { echo "setup: Go 1.26 is needed (https://go.dev/dl/)" >&2; exit 1; }
