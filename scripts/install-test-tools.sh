#!/usr/bin/env bash
# Install the Debian packages the tests drive: chromium (/usr/bin/chromium, for the browser tests)
# and qemu-user (/usr/bin/qemu-x86_64, which runs the int8 classifier on an emulated AVX2-only CPU).
# Safe to run again: it does nothing when both are there. Never runs `playwright install` (that
# downloads a browser from the internet, which these machines cannot reach).
set -euo pipefail

CHROMIUM=/usr/bin/chromium
QEMU=/usr/bin/qemu-x86_64

if [ -x "$CHROMIUM" ] && { [ -x "$QEMU" ] || [ "$(uname -m)" != x86_64 ]; }; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install-test-tools: need root (or sudo) to apt-get install chromium and qemu-user" >&2
    exit 1
  fi
fi

PACKAGES=(chromium)
[ "$(uname -m)" = x86_64 ] && PACKAGES+=(qemu-user)  # the AVX2 check emulates an x86-64 CPU
echo "install-test-tools: installing Debian's ${PACKAGES[*]} (about a minute)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y "${PACKAGES[@]}"

for tool in "$CHROMIUM" $([ "$(uname -m)" = x86_64 ] && echo "$QEMU"); do
  if [ ! -x "$tool" ]; then
    echo "install-test-tools: apt-get finished but $tool is still missing" >&2
    exit 1
  fi
done
"$CHROMIUM" --version >&2 || true
