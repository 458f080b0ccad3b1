# archfit — the two commands that matter:
#   make example   diagnose the shipped example cluster dump (offline, no cluster)
#   make test      run the whole test suite (builds the test cluster binaries once, cached)

GO        ?= go
BIN       := bin/archfit
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
PKGS      := ./...

.PHONY: all build example test unit lint fmt vet staticcheck bench runtimes-build cluster-build cluster-up cluster-down install-plugin clean release-tools release-snapshot image

all: build

build:
	$(GO) build -trimpath -ldflags "-X github.com/archfit/archfit/internal/cli.version=$(VERSION)" -o $(BIN) ./cmd/archfit

# The main job on the shipped example: a kubectl dump of a mixed cluster,
# diagnosed against an OCI layout of real images. Offline.
example: build
	$(BIN) diagnose -f examples/cluster --oci-layout examples/images --no-cache --fail-on never

# What every example image really is, entry by entry.
example-images: build
	$(BIN) inspect --oci-layout examples/images --verify --no-cache --fail-on never

# Everything: format and vet checks, the cluster test environment (cached
# outside the clone), and every test under the race detector.
test: lint cluster-build release-tools runtimes-build
	ARCHFIT_RELEASE_TOOLS=required ARCHFIT_TOOLS_BIN=$(RELEASE_TOOLS_BIN) ARCHFIT_RUNTIMES=required \
	  $(GO) test -race -count=1 -timeout 30m $(PKGS)

# Unit tests only (no cluster binaries needed; cluster tests skip).
unit:
	$(GO) test -race -count=1 $(PKGS)

lint: fmt vet staticcheck

# staticcheck, pinned, built once from the module proxy into a cache outside
# the clone (CI reuses it).
STATICCHECK_VERSION := v0.8.2
TOOLS_BIN := $(HOME)/.cache/archfit-tools/$(STATICCHECK_VERSION)
staticcheck:
	@test -x $(TOOLS_BIN)/staticcheck || GOBIN=$(TOOLS_BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(TOOLS_BIN)/staticcheck ./...

# The tools that read archfit's release files, pinned and built once from
# the Go module proxy (internal/release tests them; pre-commit is Debian's).
GORELEASER_VERSION := v2.15.1
KREW_VERSION := v0.4.3
RELEASE_TOOLS_BIN := $(HOME)/.cache/archfit-tools/release-$(GORELEASER_VERSION)-krew-$(KREW_VERSION)
release-tools:
	@test -x $(RELEASE_TOOLS_BIN)/goreleaser || GOBIN=$(RELEASE_TOOLS_BIN) $(GO) install github.com/goreleaser/goreleaser/v2@$(GORELEASER_VERSION)
	@test -x $(RELEASE_TOOLS_BIN)/krew || GOBIN=$(RELEASE_TOOLS_BIN) $(GO) install sigs.k8s.io/krew/cmd/krew@$(KREW_VERSION)
	@test -x $(RELEASE_TOOLS_BIN)/validate-krew-manifest || GOBIN=$(RELEASE_TOOLS_BIN) $(GO) install sigs.k8s.io/krew/cmd/validate-krew-manifest@$(KREW_VERSION)

# Every release archive (linux, darwin, windows x amd64, arm64) and
# checksums.txt into dist/, locally, nothing published.
release-snapshot: release-tools
	$(RELEASE_TOOLS_BIN)/goreleaser release --snapshot --clean --skip=publish

fmt:
	@out="$$(gofmt -l cmd internal examples)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# Whole-process audit of 5,000 and 100,000 pods against a registry with
# 20 ms per request, cold and warm (wall, CPU, requests, peak RSS), beside
# the ideal client's lower bound, the in-process phases and a `crane
# manifest` loop, in one table (hack/bench-audit.sh; ARCHFIT_BENCH_LARGE=0
# skips 100,000 pods); then the image benchmarks; then --verify on Debian-based
# images (hack/bench-verify.sh; needs debootstrap: apt-get install debootstrap);
# then audit, plan and diagnose of 5,000 pods on the live test cluster
# (hack/bench-live.sh).
bench:
	sh hack/bench-audit.sh
	$(GO) test -run '^$$' -bench . -benchtime 1x ./internal/image/
	sh hack/bench-verify.sh
	sh hack/bench-live.sh

# Builds the real container runtimes the conformance suite pulls with
# (internal/conformance): containerd 1.7, 2.0, 2.1, 2.2 and the newest 2.x,
# for amd64 and arm64, from the Go module proxy, once, into
# ~/.cache/archfit-runtimes. arm64 runs under Debian's qemu-aarch64-static.
runtimes-build:
	hack/runtimes.sh build

# Builds kube-apiserver, kube-scheduler, kube-controller-manager (v1.37.2) and
# etcd (v3.7.3) from the Go module proxy once, into ~/.cache/archfit-testenv.
cluster-build:
	hack/testenv.sh build

cluster-up:
	hack/testenv.sh up

cluster-down:
	hack/testenv.sh down

# archfit's own image for linux/amd64 and linux/arm64, without a Docker daemon
# (hack/image): an OCI layout in dist/image; PUSH=1 also pushes it to IMAGE.
# Reproducible: every timestamp is SOURCE_DATE_EPOCH (default: the last
# commit's time).
IMAGE ?= ghcr.io/archfit/archfit:$(VERSION)
image:
	SOURCE_DATE_EPOCH=$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct)} $(GO) run ./hack/image \
	  --version $(VERSION) --revision "$$(git rev-parse HEAD)" --tag $(IMAGE) --oci-layout dist/image \
	  $(if $(PUSH),--push $(IMAGE))

# Install as a kubectl plugin: kubectl finds kubectl-archfit on PATH.
install-plugin: build
	install -m 0755 $(BIN) $${PREFIX:-/usr/local}/bin/kubectl-archfit

clean:
	rm -rf bin
