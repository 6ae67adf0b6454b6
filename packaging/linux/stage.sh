#!/bin/sh
# Lays out the installed tree of the Linux packages under $1 from the PyInstaller bundle in
# build/pyinstaller/dist/heatshare (built first), and checks the desktop file and
# the AppStream metainfo. Used by build-deb.sh and by heatshare.rpm.spec.
#   packaging/linux/stage.sh DESTDIR
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEST=$1
BUNDLE="$ROOT/build/pyinstaller/dist/heatshare"
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$ROOT/app/heatshare/__about__.py")
APP_ID=org.heatshare.Heatshare

# The commit a bundle was built from, when the tree had no changes; with
# HEATSHARE_REUSE_BUNDLE=1 such a bundle of this very commit is packaged again as it is
# (the .deb and the .rpm of one build, in CI).
STAMP="$BUNDLE.commit"
HEAD=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo none)
CLEAN=$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null || echo unknown)
if [ "${HEATSHARE_REUSE_BUNDLE:-}" = 1 ] && [ -z "$CLEAN" ] && [ -f "$STAMP" ] \
    && [ "$(cat "$STAMP")" = "$HEAD" ] && [ -x "$BUNDLE/heatshare" ]; then
    echo "Reusing the bundle of $HEAD"
else
    rm -f "$STAMP"
    PYINSTALLER="$ROOT/.venv/bin/pyinstaller"
    [ -x "$PYINSTALLER" ] || PYINSTALLER=pyinstaller
    "$PYINSTALLER" --noconfirm --log-level ERROR \
        --distpath "$ROOT/build/pyinstaller/dist" --workpath "$ROOT/build/pyinstaller/work" \
        "$ROOT/packaging/heatshare.spec"
    [ -n "$CLEAN" ] || echo "$HEAD" > "$STAMP"
fi

rm -rf "$DEST"
mkdir -p "$DEST/usr/lib" "$DEST/usr/bin" "$DEST/usr/share/applications" \
    "$DEST/usr/share/metainfo" "$DEST/usr/lib/systemd/system" "$DEST/usr/share/doc/heatshare"
# One executable, three names (links in the bundle): it runs the program it is called as.
cp -a "$BUNDLE" "$DEST/usr/lib/heatshare"
# Debug symbols out (libpython alone: 22 MB to 6 MB), but not from the libraries auditwheel
# patched (*.libs/): strip breaks them ("ELF load command address/offset not page-aligned").
find "$DEST/usr/lib/heatshare/_internal" -type f -name '*.so*' ! -path '*.libs/*' \
    -exec strip --strip-unneeded {} +
for prog in heatshare heatshare-agent heatshare-coordinator; do
    ln -s "../lib/heatshare/$prog" "$DEST/usr/bin/$prog"
done

install -m 644 "$ROOT/resources/linux/$APP_ID.desktop" "$DEST/usr/share/applications/"
sed -e "s/@VERSION@/$VERSION/" -e "s/@DATE@/$(git -C "$ROOT" log -1 --format=%cs 2>/dev/null || date +%F)/" \
    "$ROOT/packaging/linux/$APP_ID.metainfo.xml" > "$DEST/usr/share/metainfo/$APP_ID.metainfo.xml"
chmod 644 "$DEST/usr/share/metainfo/$APP_ID.metainfo.xml"
(cd "$ROOT/resources/icons" && find hicolor -type f) | while read -r icon; do
    install -D -m 644 "$ROOT/resources/icons/$icon" "$DEST/usr/share/icons/$icon"
done
install -m 644 "$ROOT/packaging/linux/heatshare-agent@.service" "$DEST/usr/lib/systemd/system/"
printf 'Heatshare %s\nLicense: MIT\n' "$VERSION" > "$DEST/usr/share/doc/heatshare/copyright"

desktop-file-validate "$DEST/usr/share/applications/$APP_ID.desktop"
appstreamcli validate --no-net --pedantic "$DEST/usr/share/metainfo/$APP_ID.metainfo.xml"
