#!/bin/sh
# Stub of Flatcar's root setup: the mutable-/etc link (initrd-setup-root step 8), so that
# a confext merge in mutable mode "auto" makes /etc its own upper directory.
set -eu
link=/sysroot/var/lib/extensions.mutable/etc
mkdir -p /sysroot/var/lib/extensions.mutable
if [ ! -L "$link" ] && [ ! -e "$link" ]; then
    ln -s /etc "$link"
    echo "setup-root-stub: created $link -> /etc"
fi
echo "setup-root-stub: done"
