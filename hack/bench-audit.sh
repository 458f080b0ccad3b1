#!/bin/sh
# Measures archfit audit as users wait for it (issues 6 and 13): the whole
# `archfit audit -f dump.json -o json --verify` process, cold (empty cache)
# and warm, on synthetic kubectl dumps of 5,000 pods (1,000 workloads, 300
# distinct images) and 100,000 pods (20,000 workloads, 2,000 images), each
# behind an in-process registry that adds 20 ms to every request; beside the
# ideal client of issue 13 (it reads what verification needs: per entry its
# manifest, config and top layer, 16 requests in flight; run in process
# against the same registry) and one `crane manifest` per distinct image in
# a shell loop. Prints one table:
# wall time, CPU, registry requests, peak RSS (the child's rusage, as
# /usr/bin/time -v reports it), and pprof tops of a warm 5,000-pod run.
# ARCHFIT_BENCH_LARGE=0 skips the 100,000-pod fleet; ARCHFIT_BENCH_PROFILES=DIR
# keeps the profiles and the dump.
#
# To compare two builds on the 5,000-pod fleet, alternating cold and warm
# runs (wall, CPU, requests, RSS, load average; warm JSON compared):
#   ARCHFIT_BENCH_AB=base=/tmp/archfit-base,new=/tmp/archfit-new ARCHFIT_BENCH_RUNS=3 \
#     go test -run '^TestBenchAB$' -count=1 -v -timeout 60m ./internal/audit
# (ARCHFIT_BENCH_LOG=FILE logs when each registry request ran.)
set -eu
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# crane, built once from the module proxy (outside this module: go.mod is untouched).
GOBIN="$tmp" go install github.com/google/go-containerregistry/cmd/crane@v0.22.1
# the archfit binary, for the whole-process numbers (cold and warm).
go build -o "$tmp/archfit" ./cmd/archfit
ARCHFIT_BENCH=1 ARCHFIT_BENCH_CRANE="$tmp/crane" ARCHFIT_BENCH_BIN="$tmp/archfit" \
	go test -run '^TestScaleReport$' -count=1 -v -timeout 60m ./internal/audit |
	grep -v -e '^=== RUN' -e '^PASS$'
