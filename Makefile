# Virtual Router services. `make demo` and `make test` install what they need
# (Debian packages, Go modules) and work as root on a fresh Debian 12 machine.

SERVICES := one-router4 one-nat4 one-sdnat4 one-lvs one-haproxy one-dns one-dhcp4v2 one-failover one-wg
GO       ?= go
# Go's official install lands in /usr/local/go, often outside root's PATH on a
# fresh machine (and the daemons the tests look for are in /usr/sbin); the lab
# tools (vrbench, the tests' builds) run `go` as well.
export PATH := $(PATH):/usr/local/go/bin:/usr/sbin:/sbin
GOFLAGS  := -trimpath
LDFLAGS  := -s -w
FUZZTIME ?= 10s
# Tests run as root include the kernel and end-to-end tests.
TESTFLAGS ?= -count=1 -timeout 40m
# Where `make services` puts the nine static, stripped binaries (the image's).
BINDIR   ?= bin

.PHONY: all build services deps test unit fuzz bench demo clean

all: build

build: services
	CGO_ENABLED=0 $(GO) build -o bin/lab/ $$($(GO) list -f '{{if eq .Name "main"}}{{.ImportPath}}{{end}}' ./tests/...)

services:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o $(BINDIR)/ $(addprefix ./cmd/,$(SERVICES))

# Debian packages (root only; skipped when present) and Go modules.
deps:
	@if [ "$$(id -u)" = 0 ]; then ./scripts/install-deps.sh; else echo "deps: not root, skipping Debian packages (kernel tests will skip)"; fi
	$(GO) mod download

# Every level of the test ladder: vet, unit, golden, fakes, kernel and
# end-to-end (as root), then a short run of every fuzz target.
test: deps build
	$(GO) vet ./...
	$(GO) test $(TESTFLAGS) ./...
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

# Unit, golden and fake-backed tests only (no root needed).
unit:
	$(GO) test -short ./pkg/... ./services/...

fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

bench: deps build
	./bin/lab/vrbench

demo: deps build
	./bin/lab/vrlab demo

clean:
	rm -rf bin
