#!/usr/bin/env bash
# The model card's browser test (tests/test_card.py) renders the card in headless Chromium.
# Installs Debian's chromium package when it is missing and this is a Debian-based machine where we
# are root (as in CI); anywhere else it says so, and that one test skips with the reason.
set -uo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "Chromium is not installed (Debian: apt-get install chromium): the model card's browser test will skip"
    exit 0
fi
echo "installing Debian's chromium for the model card's browser test"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q chromium >/dev/null 2>&1; then
    apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1 ||
        echo "could not install chromium: the model card's browser test will skip"
fi
exit 0
