#!/usr/bin/env bash
# Proves that densenet's .deb installs and runs on a brand-new Debian 12: builds it here with
# scripts/package.sh (or takes the one given), then, in a fresh root made by scripts/fresh-root.sh,
# installs it with `apt-get install ./densenet_*.deb` and runs the program from the PATH: --version,
# summary, the man page and README in place, and a short training run, which draws its curves with
# PLplot's cairo driver (loaded at run time, so declared by hand).
#
# The package is built outside that root on purpose: a root that had built it would hold every
# build dependency, and a Depends missing from the package would go unnoticed. Recommends are not
# installed, so the Depends alone must be enough.
#
#   sudo bash scripts/check-deb.sh            # builds build-pkg first (needs scripts/install-deps.sh)
#   sudo bash scripts/check-deb.sh DEB        # checks that package
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
if [ $# -ge 1 ]; then
  deb=$(realpath "$1")
else
  deb=$(bash scripts/package.sh)
  echo "built $deb in $(( $(date +%s) - start )) s"
fi

# What runs inside the root, in the clone's folder, where fresh-root.sh copies it and the .deb. The
# training data are the README's pictures, as the package installs them: two classes of three.
inside=$(mktemp -d)
trap 'rm -rf "$inside"' EXIT
cat >"$inside/check-installed.sh" <<EOF
set -euxo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends ./$(basename "$deb") >/dev/null
command -v densenet
densenet --version
densenet summary --arch densenet121 >/tmp/summary.txt   # not into head: SIGPIPE would fail it
head -n 4 /tmp/summary.txt
test -s /usr/share/man/man1/densenet.1.gz
test -s /usr/share/doc/densenet/README.md
images=/usr/share/doc/densenet/docs/images data=/tmp/folder
for split in train test; do
  mkdir -p \$data/\$split/curves \$data/\$split/kernels
  cp \$images/loss.png \$images/accuracy.png \$images/denselayer1_conv1.png \$data/\$split/curves/
  cp \$images/conv0_*.png \$data/\$split/kernels/
done
densenet train --dataset folder --data-dir \$data --input-size 32 --batch-size 2 --epochs 1 --out /tmp/run
test -s /tmp/run/loss.png && test -s /tmp/run/loss.svg && test -s /tmp/run/last.safetensors
EOF

DENSENET_FRESH_COPY_IN=$deb:$inside/check-installed.sh bash scripts/fresh-root.sh bash check-installed.sh
echo "check-deb: $(basename "$deb") installs and runs on a fresh Debian 12 ($(( $(date +%s) - start )) s in all)"
