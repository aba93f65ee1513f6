#!/bin/sh
# Installs the Debian packages the tests, benchmarks and demo use, if missing.
set -eu
need=""
for pair in nft:nftables iptables:iptables conntrack:conntrack ip:iproute2 tcpdump:tcpdump \
	wrk:wrk nginx:nginx-light ab:apache2-utils shellcheck:shellcheck curl:curl bridge:iproute2 \
	chromium:chromium systemd-analyze:systemd; do
	cmd=${pair%%:*}
	pkg=${pair#*:}
	if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
		need="$need $pkg"
	fi
done
if [ -n "$need" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: missing packages:$need (run as root to install them)" >&2
		exit 0
	fi
	echo "install-deps: installing$need"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq $need >/dev/null
fi
# staticcheck for `make lint`, from the Go module proxy (pinned).
if ! command -v staticcheck >/dev/null 2>&1 && [ ! -x "$(go env GOPATH 2>/dev/null)/bin/staticcheck" ]; then
	echo "install-deps: installing staticcheck"
	env GOFLAGS= go install honnef.co/go/tools/cmd/staticcheck@v0.8.2 || echo "install-deps: staticcheck not installed; make lint skips it" >&2
fi
