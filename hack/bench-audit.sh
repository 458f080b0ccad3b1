#!/bin/sh
# Measures archfit audit at the scale of issue 6 (5,000 pods, 1,000
# workloads, 300 distinct images, 20 ms per registry request) against the
# obvious alternative: one `crane manifest` per distinct image in a shell
# loop, on the same in-process registry in the same run.
# Prints cold and warm wall time, the ratio to the lower bound, peak memory,
# and the same for the whole `archfit audit -f dump.json -o json` process.
set -eu
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# crane, built once from the module proxy (outside this module: go.mod is untouched).
GOBIN="$tmp" go install github.com/google/go-containerregistry/cmd/crane@v0.22.1
# the archfit binary, for the whole-process numbers (cold and warm).
go build -o "$tmp/archfit" ./cmd/archfit
ARCHFIT_BENCH=1 ARCHFIT_BENCH_CRANE="$tmp/crane" ARCHFIT_BENCH_BIN="$tmp/archfit" \
	go test -run '^TestScaleReport$' -count=1 -v -timeout 20m ./internal/audit |
	grep -v -e '^=== RUN' -e '^PASS$'
