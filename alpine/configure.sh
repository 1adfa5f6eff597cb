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
fi
rm -rf /var/cache/apk/*
