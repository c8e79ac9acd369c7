#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian or Ubuntu machine (also the Vagrant
# VM's provisioner and CI's first step): the Debian packages labctl needs,
# the Go modules, the ginkgo CLI, and labctl itself in ./bin.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (sudo scripts/setup.sh): it installs Debian packages" >&2
  exit 1
fi

packages=(iproute2 iptables nftables tcpdump tshark iputils-ping curl procps ca-certificates git graphviz util-linux)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! command -v go >/dev/null && [ ! -x /usr/local/go/bin/go ]; then
  missing+=(golang-go)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

export PATH="/usr/local/go/bin:$PATH:$(go env GOPATH 2>/dev/null || echo /root/go)/bin"
# An older distro Go fetches the toolchain go.mod asks for from the module proxy.
export GOTOOLCHAIN=auto
go mod download
ginkgo_version=$(go list -m -f '{{.Version}}' github.com/onsi/ginkgo/v2)
if ! ginkgo version 2>/dev/null | grep -q "${ginkgo_version#v}"; then
  go install "github.com/onsi/ginkgo/v2/ginkgo@${ginkgo_version}"
fi
mkdir -p bin
# Build errors are shown and stop the script: a stale bin/labctl must not
# pass for a fresh one.
commit=$(git rev-parse HEAD 2>/dev/null || true)
if ! go build -ldflags "-X main.commit=${commit}" -o bin/labctl ./cmd/labctl; then
  echo "setup.sh: building cmd/labctl failed (the compiler's errors are above)" >&2
  exit 1
fi
echo "setup.sh: ready (iptables $(iptables --version | awk '{print $2, $3}'), $(tcpdump --version 2>&1 | head -1), $(go version | awk '{print $3}'))"
