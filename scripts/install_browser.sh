#!/usr/bin/env bash
# Headless Chromium for the attention explorer's browser tests (tests/test_explore_browser.py).
# Playwright (a test dependency) drives it; its own browser download is not needed. Debian's or
# Ubuntu's package where apt-get exists (as root, or through sudo); elsewhere install Chromium or
# Chrome yourself, or point MINIBERT_CHROMIUM at its executable.
set -euo pipefail
if [ -n "${MINIBERT_CHROMIUM:-}" ]; then exit 0; fi
for browser in chromium chromium-browser google-chrome; do
    if command -v "$browser" > /dev/null; then exit 0; fi
done
if ! command -v apt-get > /dev/null; then
    echo "install_browser.sh: no Chromium, and no apt-get to install it: install Chromium or Chrome, or set" \
         "MINIBERT_CHROMIUM to its executable" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "installing Chromium (Debian's package) for the browser tests"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core > /dev/null
