# lifeboat — network-boot rescue environment with disk-encryption unlock.
# Run as root on Debian: `make demo` (main job), `make test` (what CI runs).

GO      ?= go
IMAGE   := build/image/manifest.json
# The image depends on the agent's code only (go list -deps ./cmd/lifeboat-init), not on the server's or the tests' (TestImageSourcesListed).
IMGSRC  := $(shell find cmd/lifeboat-init cmd/lifeboat-modprobe cmd/lifeboat-image initramfs unlock images pxe/agent/agentapi pxe/store/audit pxe/store/kind pxe/keys/consolecode pxe/keys/authkeys pxe/term -name '*.go' -not -name '*_test.go')

.PHONY: help deps image build test unit e2e lint fuzz demo clean bench bench-dhcp test-distros

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

deps: ## install apt packages and Go modules (idempotent)
	@./hack/deps.sh

image: deps $(IMAGE) ## build the RAM image (kernel, initramfs, iPXE loaders, manifest) into build/image

$(IMAGE): $(IMGSRC) go.mod go.sum
	$(GO) run ./cmd/lifeboat-image -out build/image -cache build/cache

build: ## build lifeboatd, the lifeboat CLI and lifeboat-image into build/bin
	$(GO) build -o build/bin/ ./cmd/lifeboatd ./cmd/lifeboat ./cmd/lifeboat-image

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.7.0

lint: deps ## go vet, staticcheck and gofmt
	$(GO) vet ./...
	$(GO) vet -tags e2e ./hack/e2e/
	GOFLAGS= $(GO) run $(STATICCHECK) ./...
	GOFLAGS= $(GO) run $(STATICCHECK) -tags e2e ./hack/e2e/
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

unit: deps ## unit, integration and fuzz-seed tests, with the race detector
	$(GO) test -race -count=1 ./...
	@# The 1 GiB argon2id unseal is too slow under -race: run it natively.
	$(GO) test -count=1 -run TestUnsealFullDefaultArgon2id -v ./unlock/

# testsum runs go test -json, prints what -v would, and ends with why each failed test failed.
TESTSUM := build/bin/testsum

$(TESTSUM): hack/testsum/main.go
	$(GO) build -o $@ ./hack/testsum

e2e: image $(TESTSUM) ## QEMU end-to-end test: BIOS and UEFI hosts boot, unlock over SSH, kexec into their OS
	$(TESTSUM) $(GO) test -json -tags e2e -count=1 -timeout 30m ./hack/e2e/

test: lint unit e2e ## everything CI runs
	$(MAKE) fuzz FUZZTIME=5s

test-distros: image $(TESTSUM) ## debootstrapped Debian (initramfs-tools; dracut) on LUKS2, PXE-booted, unlocked, to the login prompt (roots cached in build/cache/distros)
	$(TESTSUM) $(GO) test -json -tags 'e2e distros' -count=1 -timeout 60m -run TestDistros ./hack/e2e/

fuzz: ## run every fuzz target for FUZZTIME each (default 20s; make test runs 5s)
	./hack/fuzz.sh $(or $(FUZZTIME),20s)

ROUNDS ?= 2
ONLY   ?= dhcp,storm,tftp,unlock,boot
bench: image ## benchmarks side by side with dnsmasq, Kea, nginx, tftpd-hpa, cryptsetup; writes BENCHMARKS.md (ROUNDS=2, ONLY=dhcp,storm,tftp,unlock,boot)
	@./hack/bench/peers.sh
	$(GO) build -o build/bin/bench-suite ./hack/bench/suite
	./build/bin/bench-suite -rounds $(ROUNDS) -only $(ONLY)

bench-dhcp: ## the DHCP comparison of make bench alone
	$(MAKE) bench ONLY=dhcp

demo: image ## boot a QEMU host from lifeboatd and unlock it over SSH yourself
	$(GO) run ./hack/demo

clean: ## remove build outputs (keeps the kernel download cache)
	rm -rf build/image build/demo build/bin
