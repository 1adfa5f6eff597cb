#!/bin/sh
# Builds the file tree the services add to the appliance image, under DIR:
# every service installed by its own `install` verb (binary in /usr/sbin,
# OpenRC scripts in /etc/init.d), plus the contextualization hooks of
# alpine/rootfs/ (the appliance driver /etc/one-appliance/service and the
# one-context hooks in /etc/one-context.d).
#
#   alpine/rootfs.sh DIR [BINDIR]     (BINDIR: the static binaries, default bin/)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:?usage: rootfs.sh DIR [BINDIR]}
bindir=${2:-$here/../bin}
mkdir -p "$dir"
for svc in one-failover one-router4 one-nat4 one-sdnat4 one-lvs one-haproxy one-dns one-dhcp4v2 one-wg; do
	"$bindir/$svc" install --root "$dir"
done
cp -R "$here/rootfs/." "$dir/"
chmod 0750 "$dir/etc/one-appliance"
