#!/usr/bin/env bash
# Builds CRI-O from the Go module proxy for archfit's runtime conformance suite
# (internal/conformance, crio.go). Pure Go: CGO_ENABLED=0 with the build tags
# that leave out the cgo-only parts (btrfs, devicemapper, ostree, gpgme,
# seccomp, SELinux, AppArmor, libsubid). The binaries only ever pull images in
# the suite; they never run a container.
#
#   hack/runtimes-crio.sh build [ARCH...]   build (once) and cache crio for each ARCH
#                                           (default: amd64 arm64); prints one bin
#                                           directory per ARCH, in order
#   hack/runtimes-crio.sh version           prints the CRI-O version built (e.g. 1.34.0)
#
# Environment:
#   ARCHFIT_RUNTIMES_CACHE  cache root (default $HOME/.cache/archfit-runtimes); crio goes to
#                           $ARCHFIT_RUNTIMES_CACHE/cri-o-<version>-<arch>/crio beside a stamp
#   ARCHFIT_CRIO_SRC        build this CRI-O source tree (e.g. `git archive vX.Y.Z -- . ':!vendor'`
#                           of a clone) instead of the module proxy's; its version is read from
#                           internal/version/version.go and its dependencies come from the proxy
#
# The module proxy serves github.com/cri-o/cri-o v1.34.0 as its newest version (its
# version list answers 403; v1.34.1 and later, and v1.33.x, are refused one by one).
# Beware: the proxy's v1.34.0 is commit 5dd0877c of 2025-05-14 (main right after the
# 1.33 branch, version.go already saying 1.34.0), not the v1.34.0 release (d91a4497,
# 2025-09-10): the tag moved after the proxy had cached it. It runs, and reports
# itself as cri-o://1.34.0.
set -euo pipefail

CRIO_VERSION=v1.34.0
if [[ -n ${ARCHFIT_CRIO_SRC:-} ]]; then
	CRIO_VERSION=v$(sed -nE 's/^const Version = "([0-9][0-9.]*[0-9])"$/\1/p' "$ARCHFIT_CRIO_SRC/internal/version/version.go")
	[[ $CRIO_VERSION != v ]] || { echo "runtimes-crio: no version in $ARCHFIT_CRIO_SRC/internal/version/version.go" >&2; exit 1; }
fi
# LABEL names the cache directories: cri-o-<LABEL>-<arch>. A build from a
# source tree is kept apart from the proxy's module of the same version.
LABEL=${CRIO_VERSION#v}
[[ -z ${ARCHFIT_CRIO_SRC:-} ]] || LABEL=$LABEL-src
CRIO_TAGS="containers_image_openpgp containers_image_ostree_stub exclude_graphdriver_btrfs exclude_graphdriver_devicemapper btrfs_noversion"

CACHE=${ARCHFIT_RUNTIMES_CACHE:-$HOME/.cache/archfit-runtimes}

log() { printf 'runtimes-crio: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# source_dir downloads the module and copies it (read-only in the module cache)
# to a writable directory under the cache; prints that directory.
source_dir() {
	local src=$CACHE/src/cri-o-$LABEL
	if [[ -n ${ARCHFIT_CRIO_SRC:-} ]]; then
		[[ -f $ARCHFIT_CRIO_SRC/go.mod && -d $ARCHFIT_CRIO_SRC/cmd/crio ]] || die "$ARCHFIT_CRIO_SRC is no CRI-O source tree"
		if [[ ! -f $src/.complete ]] || ! diff -rq -x .complete -x vendor "$ARCHFIT_CRIO_SRC" "$src" >/dev/null; then
			rm -rf "$src"
			mkdir -p "$(dirname "$src")"
			cp -R "$ARCHFIT_CRIO_SRC" "$src.tmp"
			rm -rf "$src.tmp/vendor" # a clone's vendor/ may lack large files; the proxy has the modules
			mv "$src.tmp" "$src"
			touch "$src/.complete"
		fi
		printf '%s\n' "$src"
		return 0
	fi
	if [[ -f $src/.complete ]]; then
		printf '%s\n' "$src"
		return 0
	fi
	local json dir
	json=$(go mod download -json "github.com/cri-o/cri-o@$CRIO_VERSION") || die "go mod download github.com/cri-o/cri-o@$CRIO_VERSION failed"
	dir=$(sed -nE 's/^[[:space:]]*"Dir": "(.*)",?$/\1/p' <<<"$json")
	[[ -n $dir && -f $dir/go.mod ]] || die "no module directory in: $json"
	rm -rf "$src.tmp"
	mkdir -p "$(dirname "$src")"
	cp -R "$dir" "$src.tmp"
	chmod -R u+w "$src.tmp"
	rm -rf "$src"
	mv "$src.tmp" "$src"
	touch "$src/.complete"
	printf '%s\n' "$src"
}

# stamp names what a binary was built from: version, arch, tags, the module's
# go.sum and the Go toolchain.
stamp() {
	local arch=$1 src=$2
	local from=proxy
	[[ -z ${ARCHFIT_CRIO_SRC:-} ]] || from=source-tree
	printf 'cri-o %s %s from=%s tags=%s gosum=%s %s\n' "$CRIO_VERSION" "$arch" "$from" "$CRIO_TAGS" \
		"$(sha256sum "$src/go.sum" | cut -c1-16)" "$(go env GOVERSION)"
}

build_arch() {
	local arch=$1
	case $arch in amd64 | arm64) ;; *) die "unsupported arch $arch (amd64, arm64)" ;; esac
	local out=$CACHE/cri-o-$LABEL-$arch
	# Warm path without the lock or the Go module download: the stamp is
	# written last, after the binary is in place.
	if [[ -z ${ARCHFIT_CRIO_SRC:-} && -x $out/crio && -f $out/stamp && -f $CACHE/src/cri-o-$LABEL/.complete ]] &&
		[[ $(cat "$out/stamp") == "$(stamp "$arch" "$CACHE/src/cri-o-$LABEL")" ]]; then
		printf '%s\n' "$out"
		return 0
	fi
	mkdir -p "$CACHE"
	exec {lock}>"$CACHE/.cri-o.lock"
	flock "$lock"
	local src want
	src=$(source_dir)
	want=$(stamp "$arch" "$src")
	if [[ -x $out/crio && -f $out/stamp && $(cat "$out/stamp") == "$want" ]]; then
		exec {lock}>&-
		printf '%s\n' "$out"
		return 0
	fi
	log "building crio $CRIO_VERSION for linux/$arch (cold: about 8 minutes on 2 cores)"
	local start=$SECONDS
	mkdir -p "$out"
	rm -f "$out/stamp"
	GOWORK=off GOFLAGS=-mod=readonly CGO_ENABLED=0 GOOS=linux GOARCH=$arch \
		go build -C "$src" -trimpath -buildvcs=false -tags "$CRIO_TAGS" \
		-ldflags "-s -w" -o "$out/crio.tmp" ./cmd/crio
	mv "$out/crio.tmp" "$out/crio"
	printf '%s\n' "$want" >"$out/stamp"
	log "built $out/crio in $((SECONDS - start))s"
	exec {lock}>&-
	printf '%s\n' "$out"
}

case ${1:-} in
build)
	shift
	arches=("$@")
	((${#arches[@]})) || arches=(amd64 arm64)
	for a in "${arches[@]}"; do
		build_arch "$a"
	done
	;;
version)
	printf '%s\n' "${CRIO_VERSION#v}"
	;;
*)
	sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
