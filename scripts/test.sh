#!/usr/bin/env bash
# Runs the whole test suite: set-up, static checks, the generated-code drift
# check, every Go test with the race detector (including the Node end-to-end
# tests with the official client), and a short run of every fuzz target.
#
#   ./scripts/test.sh            everything
#   FUZZTIME=0 ./scripts/test.sh skip the fuzz runs (quick local loop)
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh

step() { printf '\n== %s\n' "$*"; }

step "gofmt"
unformatted=$(git ls-files '*.go' | grep -v '\.pb\.go$' | xargs gofmt -l)
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

step "go vet"
go vet ./...

step "go mod tidy"
go mod tidy -diff

step "generated code"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
plugin=$(go tool -n protoc-gen-go)
cp api/api.proto "$tmp/"
(cd "$tmp" && protoc --plugin=protoc-gen-go="$plugin" --go_out=. --go_opt=paths=source_relative api.proto)
if ! cmp -s "$tmp/api.pb.go" api/api.pb.go; then
  echo "api/api.pb.go does not match api/api.proto: run go generate ./api"; exit 1
fi

step "go test -race"
# The daemon binary the end-to-end tests run, built once for all packages.
go build -o "$tmp/conman" ./cmd/conman
# Two packages at a time on two cores; the Node end-to-end tests must run.
CONMAN_TEST_BINARY="$tmp/conman" CONMAN_REQUIRE_NODE=1 go test -race -p 2 -timeout 20m ./...

fuzztime=${FUZZTIME:-10s}
if [ "$fuzztime" != "0" ]; then
  step "fuzz ($fuzztime each)"
  # Every Fuzz* target, found in the sources.
  git grep -l '^func Fuzz' -- '*_test.go' | while read -r file; do
    pkg="./$(dirname "$file")"
    for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | cut -d' ' -f2); do
      echo "-- $pkg $target"
      go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" >/dev/null
    done
  done
fi

step "ok"
