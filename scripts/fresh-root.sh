#!/usr/bin/env bash
# Runs a command on a clean clone of this checkout's HEAD inside a brand-new Debian 12 root: a
# debootstrap minbase system with nothing installed by hand, using this machine's apt sources. That
# is what a new user's machine does with the README's commands, and it catches an install step that
# a developer's machine, with its leftovers, hides.
#
#   sudo bash scripts/fresh-root.sh                              # the README's test command
#   sudo bash scripts/fresh-root.sh bash scripts/quickstart.sh   # the README's quick start
#
# Needs root (debootstrap, chroot, mounts) and reaching Debian's mirror. The minbase system is made
# once (about a minute) and cached as a tarball in $DENSENET_FRESH_CACHE (default /var/tmp); every
# call unpacks a new copy of it, so installing the packages is part of each run, and removes the
# copy afterwards. Only committed work is cloned. The command's exit status is this script's.
#
# DENSENET_FRESH_COPY_IN=FILE[:FILE...] copies those files into the clone's root, the command's
# working directory: something built outside, such as the .deb that scripts/check-deb.sh installs.
set -euo pipefail
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
cmd=("$@"); [ ${#cmd[@]} -gt 0 ] || cmd=(bash scripts/test.sh)
[ "$(id -u)" -eq 0 ] || { echo "error: fresh-root.sh needs root (debootstrap, chroot, mount)" >&2; exit 2; }
copy_in=()
[ -z "${DENSENET_FRESH_COPY_IN:-}" ] || IFS=: read -ra copy_in <<<"$DENSENET_FRESH_COPY_IN"
for f in "${copy_in[@]}"; do
  [ -f "$f" ] || { echo "error: DENSENET_FRESH_COPY_IN: no file $f" >&2; exit 2; }
done

cache=${DENSENET_FRESH_CACHE:-/var/tmp}
base=$cache/densenet-debian12-minbase.tar

# The mirror this machine uses, so that the new root installs from where this machine can reach.
host_mirror() {
  local m=""
  [ -f /etc/apt/sources.list.d/debian.sources ] &&
    m=$(awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  [ -n "$m" ] || [ ! -f /etc/apt/sources.list ] ||
    m=$(awk '$1=="deb" && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list)
  echo "${m:-http://deb.debian.org/debian}"
}

if [ ! -f "$base" ]; then
  command -v debootstrap >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
  mkdir -p "$cache"
  staging=$(mktemp -d "$cache/densenet-debootstrap.XXXXXX")
  log=$cache/densenet-debootstrap.log
  echo "making a Debian 12 minbase root (once; cached in $base)"
  debootstrap --variant=minbase bookworm "$staging" "$(host_mirror)" >"$log" 2>&1 ||
    { echo "error: debootstrap failed, see $log" >&2; rm -rf --one-file-system "$staging"; exit 1; }
  tar -C "$staging" -cf "$base.partial" . && mv "$base.partial" "$base"   # never a half-written cache
  rm -rf --one-file-system "$staging"
fi

root=$(mktemp -d "$cache/densenet-fresh-root.XXXXXX")
chmod 755 "$root"   # mktemp makes it 0700; apt's _apt user and the tests need to reach inside
unmount_all() {
  # Deepest first; a lazy unmount as the last resort, so that the removal below never reaches the
  # host's /dev or /sys through a mount left behind.
  local m
  for m in $(findmnt -rn -o TARGET | grep -F "$root/" | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
}
cleanup() {
  unmount_all
  if findmnt -rn -o TARGET | grep -qF "$root/"; then
    echo "warning: mounts remain under $root; not removing it" >&2
  else
    rm -rf --one-file-system "$root"
  fi
}
trap cleanup EXIT
tar -C "$root" -xf "$base"

# This machine's apt sources and settings, keeping only the sources the new root has keys for.
rm -f "$root/etc/apt/sources.list" "$root"/etc/apt/sources.list.d/*
for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list; do
  [ -f "$f" ] || continue
  if [ "$f" = /etc/apt/sources.list ]; then target=$root/etc/apt/sources.list
  else target=$root/etc/apt/sources.list.d/$(basename "$f"); fi
  case "$f" in
    *.sources) grep -q debian-archive-keyring "$f" && cp "$f" "$target" ;;
    *) grep -Eq '^deb .*debian' "$f" && grep -E '^(#|$)|^deb(-src)? .*debian' "$f" >"$target" ;;
  esac || true
done
cp -a /etc/apt/apt.conf.d/. "$root/etc/apt/apt.conf.d/"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
# Likewise pip's settings and the certificates they name (the tests' readers come from PyPI, through
# whatever this machine's network needs: here, an egress proxy with its own CA).
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$root/etc/pip.conf"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  mkdir -p "$root/etc/ssl/certs" "$root/usr/local/share/ca-certificates"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
fi

mkdir -p "$root/build-root"
git clone -q "$repo" "$root/build-root/project"
for f in "${copy_in[@]}"; do cp "$f" "$root/build-root/project/"; done
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --rbind /dev "$root/dev"
mount --make-rslave "$root/dev"   # unmounting it later must not unmount the host's /dev/pts

echo "fresh Debian 12 root $root, clean clone of $(git -C "$repo" rev-parse --short HEAD): ${cmd[*]}"
start=$(date +%s)
status=0
chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 CI=true \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  /bin/bash -c 'cd /build-root/project && "$@"' _ "${cmd[@]}" || status=$?
echo "fresh root: '${cmd[*]}' exited $status after $(( $(date +%s) - start )) s"
exit "$status"
