# labctl in a container. Labs need a privileged container (they create
# network namespaces, veths and iptables rules inside it, never in the
# host's namespace):
#
#   docker build -t labctl .
#   docker run --privileged --rm -it labctl sh -c 'labctl up pod-networking && labctl walk'
#
# The container's own network, mount and PID namespaces and its /run are
# all a lab uses (the e2e spec "inside fresh Linux namespaces" checks the
# same with unshare). The host must allow privileged containers; nothing
# else (no host network, no /run/netns from the host).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go build -o /labctl ./cmd/labctl

FROM debian:bookworm-slim
RUN echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections && \
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      iproute2 iptables nftables tcpdump tshark iputils-ping curl procps ca-certificates util-linux graphviz && \
    rm -rf /var/lib/apt/lists/*
COPY --from=build /labctl /usr/local/bin/labctl
ENTRYPOINT []
CMD ["labctl", "--help"]
