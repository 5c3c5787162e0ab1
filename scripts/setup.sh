#!/usr/bin/env bash
# Everything kops's tests and `make up` need on this machine, each step cached:
#   Python venv + kops, a Docker engine, the offline base image, Kafka distributions
#   (Maven Central) and the kops/kafka images. Times of each step go to stderr.
#   Usage: scripts/setup.sh [--python-only | --up]
#     --up: only what the default cluster needs (no docker-compose, no Kafka 4 image)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
KAFKA3="${KOPS_KAFKA3_VERSION:-3.9.2}"
KAFKA4="${KOPS_KAFKA4_VERSION:-4.4.0}"
BASE="${KOPS_BASE_IMAGE:-kops-base:bookworm-jre17}"
say() { echo "kops-setup: $*" >&2; }
step() { local t0=$SECONDS; "$@"; say "step '$*' took $((SECONDS - t0)) s"; }

python_env() {
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" || { say "python3 -m venv failed: install python3-venv"; exit 1; }
  fi
  # Reinstall only when pyproject.toml changed since the last install.
  local stamp="$VENV/.kops-installed"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e '.[test]'
    touch "$stamp"
  fi
}

MODE="${1:-all}"
step python_env
[ "$MODE" = "--python-only" ] && exit 0
step bash scripts/ensure-engine.sh
# The compose bundle's integration test drives Debian's docker-compose (v1).
[ "$MODE" = "--up" ] || command -v docker-compose >/dev/null 2>&1 || {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing docker-compose (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; }
  else
    say "docker-compose is missing: install it (e.g. 'sudo apt-get install docker-compose')"
  fi
}
step bash scripts/build-base-image.sh
command -v mvn >/dev/null 2>&1 || {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing maven (apt-get)"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven >/dev/null
  fi
}
# javac builds the tests' Connect plugin (tests/plugin_src)
[ "$MODE" = "--up" ] || command -v javac >/dev/null 2>&1 || {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing a JDK for javac (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless >/dev/null
  fi
}
# `kops ui`'s browser tests (tests/integration/test_ui.py) drive Debian's chromium through its
# chromedriver (selenium). Skipped when both are there; in CI a browser that cannot be had
# fails the setup (the tests would fail too: never a silent skip).
have_browser() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }
browser() {
  have_browser && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing chromium and chromium-driver (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
           >/dev/null; } || true
  fi
  have_browser && return 0
  if [ "${CI:-}" = "true" ]; then
    say "no chromium/chromedriver and CI=true: the browser tests cannot run (apt-get install chromium chromium-driver)"
    exit 1
  fi
  say "chromium/chromedriver missing: the browser tests will skip; install them (e.g. 'sudo apt-get install chromium chromium-driver')"
}
[ "$MODE" = "--up" ] || step browser
VERSIONS=("$KAFKA3" "$KAFKA4")
[ "$MODE" = "--up" ] && VERSIONS=("$KAFKA3")
for v in "${VERSIONS[@]}"; do
  step "$VENV/bin/kops" dist fetch "$v" --from maven >/dev/null
  step "$VENV/bin/kops" image build "$v" --base "$BASE" >/dev/null
done
# the schema registry's image (Apicurio Registry from Maven): the full-stack presets and tests
[ "$MODE" = "--up" ] || step "$VENV/bin/kops" image build-registry --base "$BASE" >/dev/null
