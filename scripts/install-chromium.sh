#!/usr/bin/env bash
# The dashboard's browser tests drive Debian's chromium through Playwright (no browser
# download). Installs it when absent and we may (root with apt-get); otherwise says that the
# browser tests will skip (and fail under CI=true). Never fails the install itself.
set -u
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq chromium >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
    || echo "could not install chromium: the browser tests will skip" >&2
else
  echo "no chromium (apt-get install chromium as root): the browser tests will skip" >&2
fi
exit 0
