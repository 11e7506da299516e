#!/bin/sh
# The console's browser tests drive Debian's chromium through playwright-core; no browser is
# ever downloaded by a test tool. Install it when missing and we are allowed to.
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the console browser tests…"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null && exit 0
fi
echo "The console browser tests need Debian's chromium: run 'sudo apt-get install -y chromium' and try again." >&2
exit 1
