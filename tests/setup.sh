#!/usr/bin/env bash
# Installs what the tests need on a Debian machine (run as root: some tests mount a tmpfs and make
# network namespaces), then the pinned npm packages. Safe to run again: it installs only what is
# missing. The README's test command runs it first; so does CI.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "setup: '$1' is required but not installed" >&2; exit 2; }; }
need cargo
# The format test runs an independent verifier written in Python (standard library only).
if ! command -v python3 >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then apt-get update -qq && apt-get install -y -qq python3; fi
fi
need python3
# The local-network discovery test builds its own network namespaces (iproute2, run as root).
if ! command -v ip >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then apt-get update -qq && apt-get install -y -qq iproute2; fi
fi
need ip
# The disk-full tests mount a small tmpfs of their own (util-linux's mount, run as root).
if ! command -v mount >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then apt-get update -qq && apt-get install -y -qq mount; fi
fi
need mount
# The browser tests (crates/roundtable-web/tests/browser.rs) drive Debian's headless Chromium through
# Debian's chromedriver: never a downloaded browser. No recommends (desktop services); fontconfig's
# dependencies already bring a font (DejaVu).
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if command -v apt-get >/dev/null 2>&1; then apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver; fi
fi
[ -x /usr/bin/chromium ] || { echo "setup: need chromium (/usr/bin/chromium, Debian's chromium package)" >&2; exit 2; }
[ -x /usr/bin/chromedriver ] || { echo "setup: need chromedriver (/usr/bin/chromedriver, Debian's chromium-driver package)" >&2; exit 2; }
# The JavaScript checks (the reference Automerge implementation loads our exports, and decodes every
# change for the independent rules verifier tests/js/verify_rules.mjs) use Node and the packages pinned
# by tests/js/package-lock.json.
if ! command -v npm >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then apt-get update -qq && apt-get install -y -qq nodejs npm; fi
fi
need node
need npm
(cd tests/js && npm ci --no-audit --no-fund)

