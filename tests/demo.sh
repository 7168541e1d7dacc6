#!/usr/bin/env bash
# The demo: brings up a private Tor network on 127.0.0.1, runs a stream
# policy (examples/per_domain.star) with torscript, and shows where it sends
# curl's streams.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/setup.sh
exec go run ./tests/demo "$@"
