#!/bin/sh
# Runs inside the image (chroot) at the end of alpine/build.sh: enables the
# boot services and hardens SSH the way the original appliance does.
set -eu
for s in devfs dmesg mdev; do rc-update add "$s" sysinit; done
for s in hwclock modules sysctl hostname bootmisc syslog networking; do rc-update add "$s" boot; done
for s in sshd chronyd haveged qemu-guest-agent iptables keepalived one-failover; do
	[ -e "/etc/init.d/$s" ] && rc-update add "$s" default
done
# The data-plane services are started by one-failover, never by a runlevel.
mkdir -p /etc/iptables && : > /etc/iptables/rules-save
sed -i -e 's/^#\?PasswordAuthentication.*/PasswordAuthentication no/' \
       -e 's/^#\?PermitRootLogin.*/PermitRootLogin without-password/' \
       -e 's/^#\?UseDNS.*/UseDNS no/' /etc/ssh/sshd_config
if [ -n "${ONE_CONTEXT_APK:-}" ] && [ -f "$ONE_CONTEXT_APK" ]; then
	apk add --allow-untrusted "$ONE_CONTEXT_APK"
	rm -f "$ONE_CONTEXT_APK"
	# one-context's package ships its own net-99-report-ready (older
	# releases also the legacy Virtual Router scripts loc-12-firewall,
	# loc-15-ip_forward, loc-15-keepalived), written over ours or beside
	# them as .apk-new, which one-context would run too: ours go back on
	# top (build.sh mounts its work directory, rootfs/ included, here).
	hooks="$(cd "$(dirname "$0")" && pwd)/rootfs/etc/one-context.d"
	rm -f /etc/one-context.d/*.apk-new
	cp -p "$hooks"/* /etc/one-context.d/
fi
rm -rf /var/cache/apk/*
