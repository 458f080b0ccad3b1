#!/bin/sh
# Measures `archfit inspect REF --verify` on realistic multi-arch images
# built from Debian bookworm for amd64 and arm64: a rootfs layer
# (debootstrap --variant=minbase --foreign), a package layer (python3-minimal,
# ca-certificates, curl and their dependencies, extracted with dpkg-deb -x)
# and an app layer (the arch's /usr/bin/true as /usr/local/bin/app, and a
# static Go hello as /usr/local/bin/hello), on an
# in-process registry that adds 20 ms to every request. Prints, per image,
# requests, bytes served and read, wall and CPU time and peak RSS of the
# whole archfit process (/usr/bin/time -v) against the image's size, for an
# entrypoint in the top (static Go, dynamic), package and base layers, and
# for all the images in one run (they share their layers).
#
# Needs debootstrap and dpkg-deb (apt-get install -y debootstrap), and
# Debian's archive. Its downloads are cached under ~/.cache/archfit-bench
# (ARCHFIT_BENCH_CACHE), never in the repository.
# ARCHFIT_BIN measures another archfit binary (default: built from this tree);
# ARCHFIT_BENCH_RUNS runs of each row (median shown, default 3); arguments go
# to hack/verifybench (-only static|top|pkg|base|all, -delay 20ms).
set -eu
cd "$(dirname "$0")/.."
cache=${ARCHFIT_BENCH_CACHE:-$HOME/.cache/archfit-bench}
mirror=${ARCHFIT_BENCH_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
mkdir -p "$cache"
for tool in debootstrap dpkg-deb /usr/bin/time; do
	command -v "$tool" >/dev/null || { echo "bench-verify: $tool is missing (apt-get install -y debootstrap time)" >&2; exit 1; }
done

for arch in amd64 arm64; do
	# The rootfs: first stage only (no chroot, so a foreign arch works).
	if [ ! -d "$cache/rootfs-$arch" ]; then
		rm -rf "$cache/rootfs-$arch.tmp"
		debootstrap --variant=minbase --foreign --arch="$arch" "$suite" "$cache/rootfs-$arch.tmp" "$mirror" >"$cache/debootstrap-$arch.log" 2>&1 ||
			{ tail -n 20 "$cache/debootstrap-$arch.log" >&2; exit 1; }
		mv "$cache/rootfs-$arch.tmp" "$cache/rootfs-$arch"
	fi
	# The packages: downloaded by debootstrap with their dependencies; the
	# ones the rootfs does not already have are the package layer.
	if [ ! -d "$cache/pkgs-$arch" ]; then
		mkdir -p "$cache/debs-$arch"
		cp -n "$cache/rootfs-$arch"/var/cache/apt/archives/*.deb "$cache/debs-$arch/" 2>/dev/null || true
		rm -rf "$cache/dl-$arch"
		debootstrap --download-only --variant=minbase --include=python3-minimal,ca-certificates,curl \
			--cache-dir="$cache/debs-$arch" --arch="$arch" "$suite" "$cache/dl-$arch" "$mirror" >"$cache/download-$arch.log" 2>&1 ||
			{ tail -n 20 "$cache/download-$arch.log" >&2; exit 1; }
		rm -rf "$cache/pkgs-$arch.tmp"
		mkdir -p "$cache/pkgs-$arch.tmp"
		ls "$cache/rootfs-$arch/var/cache/apt/archives" | sort >"$cache/base-$arch.list"
		ls "$cache/dl-$arch/var/cache/apt/archives" | grep '\.deb$' | sort | comm -13 "$cache/base-$arch.list" - |
			while read -r deb; do dpkg-deb -x "$cache/dl-$arch/var/cache/apt/archives/$deb" "$cache/pkgs-$arch.tmp"; done
		# The rootfs is merged-/usr: what a package ships under /bin, /lib...
		# lands in /usr/bin, /usr/lib... (the top-level ones are symlinks).
		for d in bin sbin lib lib64; do
			if [ -d "$cache/pkgs-$arch.tmp/$d" ] && [ ! -L "$cache/pkgs-$arch.tmp/$d" ]; then
				mkdir -p "$cache/pkgs-$arch.tmp/usr/$d"
				cp -a "$cache/pkgs-$arch.tmp/$d/." "$cache/pkgs-$arch.tmp/usr/$d/"
				rm -rf "$cache/pkgs-$arch.tmp/$d"
			fi
		done
		mv "$cache/pkgs-$arch.tmp" "$cache/pkgs-$arch"
	fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A static Go binary for the app layer (its own module: go.mod is untouched).
for arch in amd64 arm64; do
	if [ ! -f "$cache/hello-$arch" ]; then
		mkdir -p "$tmp/hello"
		printf 'module example.com/hello\n\ngo 1.22\n' >"$tmp/hello/go.mod"
		printf 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello") }\n' >"$tmp/hello/main.go"
		(cd "$tmp/hello" && CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOFLAGS=-mod=mod go build -trimpath -o "$cache/hello-$arch" .)
	fi
done
bin=${ARCHFIT_BIN:-}
if [ -z "$bin" ]; then
	go build -o "$tmp/archfit" ./cmd/archfit
	bin=$tmp/archfit
fi
go run ./hack/verifybench -archfit "$bin" -work "$cache" -runs "${ARCHFIT_BENCH_RUNS:-3}" "$@"
