# unshim: see README.md. `make test` runs every test; `make demo` runs the main job on the lab
# (a dockershim and a cri-dockerd node, the checks, one switch), then a cluster rollout on a
# three-node lab ending with its report; `make demo-rollout` runs the rollout alone.
GO ?= go

.PHONY: all build deps test demo demo-rollout bench lint clean release agent-image man crd

all: build

build:
	$(GO) build -o bin/unshim ./cmd/unshim
	ln -sf unshim bin/kubectl-unshim
	ln -sf unshim bin/kubectl_complete-unshim

deps:
	hack/install-deps.sh

test: deps build lint
	hack/test.sh

demo: deps build
	hack/demo.sh
	hack/demo-rollout.sh

# A rollout on a lab of three Docker nodes (a Deployment under a PDB, a
# canary, then one node at a time), ending with its report (bin/demo-rollout/).
demo-rollout: deps build
	hack/demo-rollout.sh

bench: deps build
	hack/bench.sh

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	$(GO) vet ./...
	test -z "$$(gofmt -l .)" || (gofmt -l . && exit 1)
	$(GO) run $(STATICCHECK) ./...

# Release artifacts in dist/ (see README "Install"): stamped, reproducible
# archives for linux/amd64, linux/arm64 and windows/amd64 with SHA256SUMS and
# the krew manifest unshim.yaml, and the man pages. The version, commit and
# date come from git; VERSION=v1.2.3 and RELEASE_BASE_URI=https://... override.
RELEASE_FLAGS = $(if $(VERSION),-version $(VERSION)) $(if $(RELEASE_BASE_URI),-base-uri $(RELEASE_BASE_URI))

release:
	$(GO) run ./hack/release archives -out dist $(RELEASE_FLAGS)
	$(GO) run ./hack/release man -out dist/man $(RELEASE_FLAGS)

# The --via pod agent image (the static binary at /unshim), built without
# Docker, as dist/unshim-agent-VERSION-linux-ARCH.tar; prints its digest.
AGENT_ARCH ?= amd64
agent-image:
	$(GO) run ./hack/release agent-image -out dist -arch $(AGENT_ARCH) $(if $(VERSION),-version $(VERSION))

man:
	$(GO) run ./hack/release man -out bin/man

# The RuntimeMigration CRD (deploy/crd) and the API's DeepCopy methods,
# generated from pkg/apis by controller-gen (built from the module proxy).
# pkg/apis/unshim/v1alpha1's tests fail when the CRD is out of step.
CONTROLLER_GEN ?= sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0

crd:
	$(GO) run $(CONTROLLER_GEN) object paths=./pkg/apis/... crd:crdVersions=v1 output:crd:dir=deploy/crd

clean:
	rm -rf bin dist
