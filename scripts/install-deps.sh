#!/bin/sh
# Installs what the tests, the lab and the demo need on a fresh Debian 12
# machine: the daemons the services drive and the tools the tests use. Needs
# root; does nothing for packages already installed.
set -eu

PACKAGES="
iptables nftables iproute2 procps util-linux iputils-ping kmod coreutils
make curl
openrc
keepalived conntrackd conntrack
haproxy
unbound dnsutils
busybox isc-dhcp-client kea-admin dnsmasq-base
gcc libc6-dev
wireguard-tools wireguard-go
iperf3
"

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f '${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing="$missing $p"
done
if [ -z "$missing" ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages:$missing (run as root to install them)" >&2
	exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# Daemons must not be started by the package scripts: the lab starts its own.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get update -q
apt-get install -y -q --no-install-recommends $missing
