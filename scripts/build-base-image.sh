#!/usr/bin/env bash
# Build kops's offline base image: Debian bookworm with a JRE, systemd and sshd, made
# with debootstrap + `docker import` (no image registry needed). It serves both as the
# base of the Kafka image and as the VM-like SSH test host. Kept once built: a second
# run finds it and does nothing.
set -euo pipefail
IMAGE="${KOPS_BASE_IMAGE:-kops-base:bookworm-jre17}"
# The Debian mirror this machine's apt already uses (deb822 .sources or sources.list),
# unless KOPS_DEBIAN_MIRROR says otherwise: kops names no mirror of its own.
apt_mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '/^URIs:/ {print $2; exit}' "$f")
    case "$uri" in *security*|"") ;; *) echo "$uri"; return 0 ;; esac
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' "$f")
    [ -n "$uri" ] && { echo "$uri"; return 0; }
  done
  return 1
}
MIRROR="${KOPS_DEBIAN_MIRROR:-$(apt_mirror || true)}"
say() { echo "kops-setup: $*" >&2; }

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  say "base image $IMAGE present"
  exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing debootstrap (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  else
    say "debootstrap is needed to build $IMAGE offline; install it (apt-get install debootstrap)"
    exit 1
  fi
fi
if [ -z "$MIRROR" ]; then
  say "no Debian mirror found in the apt sources of this machine; set KOPS_DEBIAN_MIRROR (e.g. your mirror's .../debian URL)"
  exit 1
fi
work=$(mktemp -d /var/tmp/kops-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
say "building $IMAGE with debootstrap from $MIRROR (about a minute)"
start=$(date +%s)
debootstrap --variant=minbase \
  --include=openjdk-17-jre-headless,systemd,systemd-sysv,openssh-server,python3,procps,iproute2,netcat-openbsd,sudo,ca-certificates \
  bookworm "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
    say "debootstrap failed; last lines:"; tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
# Slim it and make it a good container / VM stand-in.
chroot "$work/rootfs" apt-get clean
rm -rf "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/usr/share/doc/"* "$work/rootfs/usr/share/man/"*
echo "kops" > "$work/rootfs/etc/hostname"
# Host keys are generated per host on first boot by the test-host setup (ssh-keygen -A).
rm -f "$work/rootfs/etc/ssh/ssh_host_"*
tar -C "$work/rootfs" -c . | docker import \
  -c 'CMD ["/bin/bash"]' -c 'ENV LANG=C.UTF-8' \
  -c 'LABEL io.kops.image=base' \
  - "$IMAGE" >/dev/null
say "built $IMAGE in $(( $(date +%s) - start )) s"
