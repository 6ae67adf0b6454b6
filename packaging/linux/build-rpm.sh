#!/bin/sh
# Builds dist/heatshare-<version>-1.<arch>.rpm with rpmbuild: packaging/linux/build-rpm.sh
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$ROOT/app/heatshare/__about__.py")
STAGE="$ROOT/build/rpm/root"
TOP="$ROOT/build/rpm/top"

"$ROOT/packaging/linux/stage.sh" "$STAGE"
rm -rf "$TOP"
mkdir -p "$TOP" "$ROOT/dist"
HEATSHARE_STAGE="$STAGE" rpmbuild -bb --quiet \
    --define "_topdir $TOP" \
    --define "version $VERSION" \
    --define "_rpmdir $ROOT/dist" \
    --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
    --define "_binary_payload w6.xzdio" \
    "$ROOT/packaging/linux/heatshare.rpm.spec"
ls "$ROOT/dist/heatshare-$VERSION-1."*.rpm
