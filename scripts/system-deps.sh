#!/bin/sh
# Installs the Debian/Ubuntu packages Heatshare needs, or says exactly what to run.
#   scripts/system-deps.sh run    what the app needs (Qt's X11 libraries)
#   scripts/system-deps.sh test   that, plus what the tests need (Xvfb, a tray host, bubblewrap…)
set -eu

RUN_PKGS="libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-render-util0 \
libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-shape0 libegl1 libgl1 libfontconfig1 \
libdbus-1-3"
TEST_PKGS="xvfb trayer xdotool x11-utils imagemagick bubblewrap postgresql mosquitto poppler-utils \
desktop-file-utils appstream rpm binutils icu-devtools systemd"

case "${1:-run}" in
    run) want="$RUN_PKGS" ;;
    test) want="$RUN_PKGS $TEST_PKGS" ;;
    *) echo "usage: $0 run|test" >&2; exit 2 ;;
esac

# A Python without venv/ensurepip (Debian's own python3) needs python3-venv as well.
if ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then
    want="$want python3-venv python3-pip"
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "Not a Debian/Ubuntu system: install the equivalents of: $want" >&2
    exit 0
fi

missing=""
for pkg in $want; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    case "$status" in
        *"install ok installed"*) ;;
        *) missing="$missing $pkg" ;;
    esac
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    echo "Installing system packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086  # the list is meant to split into words
    apt-get install -y -qq --no-install-recommends $missing
else
    echo "Heatshare needs these system packages. Run, as root:" >&2
    echo "  sudo apt-get install -y$missing" >&2
    exit 1
fi
