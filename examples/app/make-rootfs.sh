#!/bin/sh
# Makes rootfs.tar.xz beside this script: a small Debian-like root filesystem around Debian's
# busybox-static, standing in for what mmdebstrap or debootstrap would make (without needing a
# mirror). vinci's `tar` layer takes it as the image's base; see docs/tutorial.md.
#
#   ./make-rootfs.sh [BUSYBOX]     BUSYBOX: a static busybox binary (default /bin/busybox)
#
# Modes and owners are set explicitly, so the tree does not depend on the umask or the user;
# the tarball's own bytes (mtimes, entry order) do not matter: vinci rewrites its entries.
set -eu
busybox="${1:-/bin/busybox}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT

for dir in bin etc usr usr/lib root tmp var var/log; do
  mkdir -p "$root/$dir"
  chmod 0755 "$root/$dir"
done
chmod 0700 "$root/root"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
for applet in sh cat echo env httpd id ls printf seq sleep wget; do
  ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
  >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
printf 'PRETTY_NAME="Debian busybox-static root filesystem"\nNAME="Debian GNU/Linux"\nID=debian\n' \
  >"$root/usr/lib/os-release"
chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/usr/lib/os-release"
ln -s ../usr/lib/os-release "$root/etc/os-release"
tar -C "$root" --numeric-owner --owner=0 --group=0 -cJf "$here/rootfs.tar.xz" .
echo "wrote $here/rootfs.tar.xz"
