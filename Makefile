# unshim: see README.md. `make test` runs every test; `make demo` runs the main job on the lab.
GO ?= go

.PHONY: all build deps test demo bench lint clean

all: build

build:
	$(GO) build -o bin/unshim ./cmd/unshim
	ln -sf unshim bin/kubectl-unshim

deps:
	hack/install-deps.sh

test: deps build lint
	hack/test.sh

demo: deps build
	hack/demo.sh

bench: deps build
	hack/bench.sh

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	$(GO) vet ./...
	test -z "$$(gofmt -l .)" || (gofmt -l . && exit 1)
	$(GO) run $(STATICCHECK) ./...

clean:
	rm -rf bin
