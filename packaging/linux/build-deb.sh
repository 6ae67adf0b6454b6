#!/bin/sh
# Builds dist/heatshare_<version>_<arch>.deb with dpkg-deb: packaging/linux/build-deb.sh
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$ROOT/app/heatshare/__about__.py")
ARCH=$(dpkg --print-architecture)
PKG="$ROOT/build/deb/root"

"$ROOT/packaging/linux/stage.sh" "$PKG"
mkdir -p "$PKG/DEBIAN"
for script in postinst prerm postrm; do
    install -m 755 "$ROOT/packaging/linux/$script" "$PKG/DEBIAN/"
done
INSTALLED_KB=$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)
# The bundle carries Python, Qt and their libraries; these are what Qt's xcb platform and
# the sandbox need from the system.
cat > "$PKG/DEBIAN/control" <<CONTROL
Package: heatshare
Version: $VERSION
Architecture: $ARCH
Maintainer: Heatshare <packages@heatshare.org>
Installed-Size: $INSTALLED_KB
Depends: libc6 (>= 2.31), libxcb-cursor0, libxcb-icccm4, libxcb-image0, libxcb-keysyms1, libxcb-render-util0, libxcb-xinerama0, libxcb-xkb1, libxkbcommon-x11-0, libxcb-shape0, libegl1, libgl1, libfontconfig1, libdbus-1-3
Recommends: bubblewrap, pkexec | policykit-1
Section: utils
Priority: optional
Homepage: https://heatshare.org
Description: turn your computer into a heater that earns
 Heatshare shows, live, how much heat a computer puts out, what that heat
 costs and how hot the hardware runs, heats the room to a schedule, and can
 enrol the machine in a compute network so the heat does paid work.
 .
 Three programs: heatshare (the desktop app), heatshare-agent (the service)
 and heatshare-coordinator (a compute network's server).
CONTROL
mkdir -p "$ROOT/dist"
OUT="$ROOT/dist/heatshare_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$PKG" "$OUT"
# The commit it was built from, when the tree had no changes: tests reuse only such a build.
rm -f "$OUT.commit"
if [ -z "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    git -C "$ROOT" rev-parse HEAD > "$OUT.commit"
fi
echo "$OUT"
