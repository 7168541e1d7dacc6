#!/usr/bin/env bash
# The demo: brings up a private Tor network on 127.0.0.1, shows tor's
# version and circuits, and a curl through it with its stream events.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/setup.sh
exec go run ./tests/demo "$@"
