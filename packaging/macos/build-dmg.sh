#!/bin/sh
# Heatshare.app and its .dmg, on macOS, from the repository root after
#   pyinstaller --noconfirm packaging/heatshare.spec     (makes dist/Heatshare.app)
# then: packaging/macos/build-dmg.sh  →  dist/Heatshare-<version>.dmg
#
# The app is signed ad hoc (codesign -s -), not with a Developer ID, and not notarised: a
# downloaded copy opens only after "Open" from the Finder's context menu (Gatekeeper).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$ROOT/app/heatshare/__about__.py")
APP="$ROOT/dist/Heatshare.app"
DMG="$ROOT/dist/Heatshare-$VERSION.dmg"
[ -d "$APP" ] || { echo "no $APP: run pyinstaller --noconfirm packaging/heatshare.spec first" >&2; exit 1; }

# Our Info.plist (LSUIElement: a menu-bar app), with the version, and the icon it names.
sed "s/@VERSION@/$VERSION/g" "$ROOT/packaging/macos/Info.plist" > "$APP/Contents/Info.plist"
plutil -lint "$APP/Contents/Info.plist"
cp "$ROOT/resources/icons/org.heatshare.Heatshare.icns" "$APP/Contents/Resources/"
# One executable runs the program it is named as (packaging/entry.py); the app starts its
# agent as heatshare-agent beside itself.
for name in heatshare-agent heatshare-coordinator; do
    ln -sf heatshare "$APP/Contents/MacOS/$name"
done
codesign --force --deep --sign - "$APP"
codesign --verify --deep --strict "$APP"

# The disk image: the app and a link to /Applications to drag it onto.
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
rm -f "$DMG"
hdiutil create -volname "Heatshare $VERSION" -srcfolder "$STAGE" -fs HFS+ -format UDZO -ov "$DMG"
hdiutil verify "$DMG"
echo "$DMG"
