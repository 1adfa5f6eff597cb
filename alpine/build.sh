#!/bin/sh
# Builds the Virtual Router appliance image (qcow2) from a stock Alpine
# release. Needs root, network access, qemu-img and the nbd kernel module
# (alpine-make-vm-image's requirements) on a Linux host.
#
#   alpine/build.sh [OUTPUT.qcow2]
#
# Environment:
#   ALPINE_BRANCH        Alpine release (default v3.21, as the original appliance)
#   ONE_CONTEXT_APK      path or URL of OpenNebula's one-context .apk to install
#                        (https://github.com/OpenNebula/one-apps/releases)
#   IMAGE_SIZE           default 1G
#
# The image gets the packages of alpine/packages, the nine static binaries,
# their OpenRC scripts and the contextualization hooks (alpine/rootfs.sh),
# and no compiler.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-vrouter.qcow2}
branch=${ALPINE_BRANCH:-v3.21}

# Say what is missing before anything is downloaded or built.
[ "$(id -u)" = 0 ] || { echo "build.sh: needs root (alpine-make-vm-image mounts the image)" >&2; exit 1; }
missing=""
for tool in wget make go qemu-img qemu-nbd rsync sfdisk mkfs.ext4; do
	command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
	echo "build.sh: missing on this host:$missing (Debian: apt-get install wget make qemu-utils rsync fdisk e2fsprogs; Go from https://go.dev/dl)" >&2
	exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# alpine-make-vm-image, pinned.
amvi_version=v0.13.1
amvi="$work/alpine-make-vm-image"
wget -q -O "$amvi" "https://raw.githubusercontent.com/alpinelinux/alpine-make-vm-image/$amvi_version/alpine-make-vm-image"
chmod +x "$amvi"

# The nine static, stripped binaries, then the tree they install.
make -C "$here/.." services BINDIR="$work/bin"
"$here/rootfs.sh" "$work/rootfs" "$work/bin"

apk_file=""
if [ -n "${ONE_CONTEXT_APK:-}" ]; then
	case $ONE_CONTEXT_APK in
	http*://*) wget -q -O "$work/rootfs/root/one-context.apk" "$ONE_CONTEXT_APK" ;;
	*) cp "$ONE_CONTEXT_APK" "$work/rootfs/root/one-context.apk" ;;
	esac
	apk_file=/root/one-context.apk
fi
cp "$here/configure.sh" "$work/configure.sh"

packages=$(grep -v '^#' "$here/packages" | tr '\n' ' ')
ONE_CONTEXT_APK=$apk_file "$amvi" \
	--image-format qcow2 --image-size "${IMAGE_SIZE:-1G}" \
	--branch "$branch" \
	--packages "$packages" \
	--fs-skel-dir "$work/rootfs" --fs-skel-chown root:root \
	--script-chroot \
	"$out" "$work/configure.sh"
echo "built $out"
