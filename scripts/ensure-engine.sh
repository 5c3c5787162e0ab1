#!/usr/bin/env bash
# Make sure a Docker engine answers. On a root shell on Debian/Ubuntu without one,
# install Debian's docker.io and start dockerd (there may be no systemd). Otherwise
# say what to install and fail.
set -euo pipefail
say() { echo "kops-setup: $*" >&2; }

if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  exit 0
fi
if [ -n "${DOCKER_HOST:-}" ]; then
  say "DOCKER_HOST=$DOCKER_HOST does not answer; start that engine or unset DOCKER_HOST"
  exit 1
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  say "no Docker engine answers. Install Docker (e.g. 'sudo apt-get install docker.io') and start it, then retry."
  exit 1
fi
if ! command -v dockerd >/dev/null 2>&1; then
  say "no Docker engine: installing Debian's docker.io (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi
if ! docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    say "starting docker with systemctl"
    systemctl start docker || true
  fi
fi
if ! docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  say "starting dockerd in the background (log: /var/log/kops-dockerd.log)"
  nohup dockerd >/var/log/kops-dockerd.log 2>&1 </dev/null &
fi
for _ in $(seq 1 60); do
  if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    say "docker engine $(docker version --format '{{.Server.Version}}') is up"
    exit 0
  fi
  sleep 1
done
say "dockerd did not answer within 60 s; last lines of /var/log/kops-dockerd.log:"
tail -n 20 /var/log/kops-dockerd.log >&2 || true
exit 1
