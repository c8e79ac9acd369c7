#!/usr/bin/env bash
# The project's test command (README, CI): sets the machine up, then runs
# gofmt and vet, the unit tests (pure packages run anywhere; kernel tests need root)
# and every Ginkgo e2e suite on real labs. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="/usr/local/go/bin:$PATH:$(go env GOPATH)/bin"
export GOTOOLCHAIN=auto

echo "== gofmt, go vet"
unformatted=$(gofmt -l cmd lab e2e examples)
if [ -n "$unformatted" ]; then
  echo "test.sh: not gofmt-formatted: $unformatted" >&2
  exit 1
fi
go vet ./...
echo "== unit tests"
go test -count=1 ./lab/... ./cmd/...
echo "== fuzzing topology loading and load balancer decisions (bounded; longer runs: docs/testing.md)"
go test -run='^$' -fuzz=FuzzParse -fuzztime=15s -fuzzminimizetime=3s ./lab/spec
go test -run='^$' -fuzz=FuzzBuild -fuzztime=15s -fuzzminimizetime=3s ./lab/lb
echo "== e2e suites and the library examples (ginkgo)"
log=$(mktemp)
report=$(mktemp)
trap 'rm -f "$log" "$report"' EXIT
set +e
ginkgo -r --keep-going --no-color --json-report="$report" ./e2e ./examples 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
# Nothing of a lab may outlive the tests.
left=$(ip netns list | awk '{print $1}' | grep -E '^lc\.(e2e|example)-' || true)
if [ -n "$left" ]; then
  echo "test.sh: the e2e suites left namespaces behind: $left" >&2
  rc=1
fi
# One plain closing line over every suite, counted from ginkgo's JSON
# report (its console summary is terse when every suite passes):
# "e2e: N passed, N failed, N skipped".
awk '/"LeafNodeType":/ {it = ($0 ~ /"It"/)}
  /"State":/ && it {s = $2; gsub(/[",]/, "", s); c[s]++; it = 0}
  END {printf "e2e: %d passed, %d failed, %d skipped\n", c["passed"],
    c["failed"] + c["panicked"] + c["interrupted"] + c["aborted"] + c["timedout"], c["skipped"] + c["pending"]}' "$report"
exit $rc
