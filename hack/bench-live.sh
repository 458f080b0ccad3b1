#!/bin/sh
# Measures archfit against a live API server at scale (issue 13): the real
# test cluster (hack/testenv.sh build; kube-apiserver, scheduler,
# controller-manager and node twins) with 5,000 pods in 1,000 Deployments,
# 500 of them crash-looping with `exec format error` in 5 Deployments; then
# `archfit audit`, `plan` and `diagnose -A` as whole processes (wall, CPU
# user+sys and peak RSS from GNU time, API requests by verb and resource from
# the API server's apiserver_request_total), beside an ideal client (the
# fewest list and log requests, each page decoded and dropped) and what a
# user scripts (list the pods, one `logs --previous` per failing pod).
# Creating the fleet takes about 5 minutes on a loaded 2-core machine.
#
# ARCHFIT_BENCH_KUBECTL=PATH also times `kubectl get pods -A -o json` and a
# `kubectl logs --previous` loop; ARCHFIT_BENCH_BUILD_KUBECTL=1 builds
# kubectl v1.37.2 from the Go module proxy once (in a copy of hack/tools,
# cached in ~/.cache/archfit-tools; several minutes of CPU).
# ARCHFIT_BENCH_BASE_REV=REV also runs audit and diagnose built from REV.
# ARCHFIT_BENCH_LIVE_{PODS,WORKLOADS,FAILING,CRASH_WORKLOADS,IMAGES} resize
# the fleet (healthy pods, all workloads, crash-looping pods, their workloads).
set -eu
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/archfit" ./cmd/archfit
if [ -n "${ARCHFIT_BENCH_BASE_REV:-}" ]; then
	mkdir "$tmp/base"
	git archive "$ARCHFIT_BENCH_BASE_REV" | tar -x -C "$tmp/base"
	(cd "$tmp/base" && go build -o "$tmp/archfit-base" ./cmd/archfit)
	export ARCHFIT_BENCH_BASE_BIN="$tmp/archfit-base"
fi
if [ "${ARCHFIT_BENCH_BUILD_KUBECTL:-}" = 1 ] && [ -z "${ARCHFIT_BENCH_KUBECTL:-}" ]; then
	dir="$HOME/.cache/archfit-tools/kubectl-v1.37.2"
	if [ ! -x "$dir/kubectl" ]; then
		mkdir -p "$tmp/tools" "$dir"
		cp hack/tools/go.mod hack/tools/go.sum "$tmp/tools/"
		(cd "$tmp/tools" && GOFLAGS=-mod=mod go build -o "$dir/kubectl" k8s.io/kubernetes/cmd/kubectl)
	fi
	export ARCHFIT_BENCH_KUBECTL="$dir/kubectl"
fi
hack/testenv.sh build >/dev/null
ARCHFIT_BENCH_LIVE=1 ARCHFIT_BENCH_BIN="$tmp/archfit" \
	go test -run '^TestLiveScale$' -count=1 -v -timeout 60m ./internal/cluster/livebench |
	grep -v -e '^=== RUN' -e '^PASS$'
