#!/usr/bin/env bash
# Builds the real container runtimes of archfit's runtime conformance suite
# (internal/conformance) from the Go module proxy, once per machine, into a
# cache outside the clone:
#
#   hack/runtimes.sh build     build every runtime below (warm: under a second)
#   hack/runtimes.sh list      print NAME VERSION ARCH BIN for each built one
#
# containerd is built from its downloaded module (go install refuses these
# modules because of the exclude lines in their go.mod), with CGO_ENABLED=0
# and the tags that leave out cgo-only snapshotters. Only the containerd
# daemon is built: the suite drives it through the CRI itself.
set -euo pipefail

CACHE="${ARCHFIT_RUNTIMES_CACHE:-$HOME/.cache/archfit-runtimes}"
GO="${GO:-go}"
ARCHS="${ARCHFIT_RUNTIMES_ARCHS:-amd64 arm64}"
# Each containerd minor that pulls differently, and the newest release the
# module proxy serves. Which containerd/platforms each one links is in its
# go.mod (1.7 v0.2.1, 2.0 v0.2.1, 2.1.9 and 2.2 v1.0.0-rc.2, 2.3+ rc.5).
CONTAINERD_VERSIONS="${ARCHFIT_CONTAINERD_VERSIONS:-1.7.35 2.0.14 2.1.9 2.2.9 2.4.2}"
TAGS="no_btrfs no_devmapper no_zfs no_aufs"

module_of() {
  case "$1" in
    1.*) echo "github.com/containerd/containerd@v$1" ;;
    *) echo "github.com/containerd/containerd/v2@v$1" ;;
  esac
}

build_containerd() {
  local ver="$1" arch="$2"
  local out="$CACHE/containerd-$ver-$arch"
  local stamp="containerd v$ver $arch tags=$TAGS $($GO env GOVERSION)"
  if [ -x "$out/containerd" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  local src="$CACHE/src/containerd-$ver"
  if [ ! -f "$src/go.mod" ]; then
    local dir
    dir="$(GOFLAGS=-mod=mod $GO mod download -json "$(module_of "$ver")" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    [ -n "$dir" ] || { echo "runtimes: cannot download containerd v$ver" >&2; return 1; }
    rm -rf "$src.tmp" && mkdir -p "$(dirname "$src")"
    cp -r "$dir" "$src.tmp" && chmod -R u+w "$src.tmp" && mv "$src.tmp" "$src"
  fi
  echo "runtimes: building containerd v$ver for $arch" >&2
  mkdir -p "$out"
  (cd "$src" && GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 GOOS=linux GOARCH="$arch" \
    $GO build -trimpath -tags "$TAGS" \
      -ldflags "-X github.com/containerd/containerd/version.Version=v$ver -X github.com/containerd/containerd/v2/version.Version=v$ver" \
      -o "$out/containerd.tmp" ./cmd/containerd)
  mv "$out/containerd.tmp" "$out/containerd"
  echo "$stamp" > "$out/stamp"
}

cmd_build() {
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock 9
  local v a
  for v in $CONTAINERD_VERSIONS; do
    for a in $ARCHS; do
      build_containerd "$v" "$a"
    done
  done
  cmd_list
}

cmd_list() {
  local v a
  for v in $CONTAINERD_VERSIONS; do
    for a in $ARCHS; do
      local bin="$CACHE/containerd-$v-$a/containerd"
      [ -x "$bin" ] && echo "containerd $v $a $bin"
    done
  done
  return 0
}

case "${1:-}" in
  build) cmd_build ;;
  list) cmd_list ;;
  *) echo "usage: $0 build|list" >&2; exit 2 ;;
esac
