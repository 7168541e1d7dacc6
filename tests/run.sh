#!/usr/bin/env bash
# Runs every test: formatting, vet, staticcheck, unit tests, and the
# end-to-end tests against a private Tor network on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
SETUP_PROMETHEUS=1 . tests/setup.sh

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then echo "gofmt would change: $bad"; exit 1; fi
echo "== go vet"
go vet ./...
echo "== staticcheck"
if ! command -v staticcheck >/dev/null 2>&1 && [ ! -x "$(go env GOPATH)/bin/staticcheck" ]; then
	go install honnef.co/go/tools/cmd/staticcheck@latest
fi
PATH="$PATH:$(go env GOPATH)/bin" staticcheck ./...
echo "== go test"
# CI=true turns a missing tor into a failure instead of a skip.
go test -count=1 -timeout 30m ./... "$@"
