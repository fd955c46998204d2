#!/usr/bin/env bash
# Install what the tests need (SIPp, baresip, SIPVicious, tshark, sox, iproute2 from Debian; the project and its test extras from PyPI
# into .venv) and run the whole suite. Used by CI (.ci/run) and by anyone on a fresh Debian 12 machine.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
need_apt=0
for tool in sipp baresip tshark sox svmap ip unshare; do command -v "$tool" >/dev/null 2>&1 || need_apt=1; done
if [ "$need_apt" = 1 ]; then
  $SUDO apt-get update -q
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    sip-tester baresip-core tshark sox libsox-fmt-all sipvicious iproute2 util-linux
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test,piper]'

status=0
.venv/bin/python -m pytest "$@" || status=$?
# pytest's 5 means no tests ran: that is a failure here.
exit $status
