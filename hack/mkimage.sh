#!/bin/sh
# mkimage.sh OUT.tar REF — writes a `docker save`-format archive of a one-layer busybox image
# named REF (e.g. docker.io/mesosk3s/busybox:1.35), built from the host's busybox-static
# with nothing but tar and sha256sum (no registry, no Docker).
#
# One image serves as the CRI sandbox ("pause") image and as the workload image: its
# Entrypoint/Cmd `/bin/sleep 2147483647` keeps a sandbox alive, and pods run
# `busybox httpd`, `sh`, `wget`, ... by overriding the command.
#
# How a node gets it:
# * K3s running its own containerd (the recipe in hack/nodecheck/RECIPE.md): copy OUT.tar to
#   <data-dir>/agent/images/ before `k3s agent` starts; K3s imports every archive there
#   into containerd's k8s.io namespace at startup (air-gap image import).
# * any other containerd: ctr -a <socket> -n k8s.io images import OUT.tar
#   (`ctr` = a symlink named ctr to the k3s binary, or Debian's /usr/bin/ctr).
# Pods must use imagePullPolicy Never (or IfNotPresent): there is no registry behind REF.
#
# The archive is byte-for-byte reproducible (fixed mtimes, owners and file order), so the
# image ID only changes when the host's busybox does.
set -eu

if [ $# -ne 2 ]; then
  echo "usage: $0 OUT.tar REF" >&2
  exit 2
fi
out="$1"
ref="$2"
busybox="${BUSYBOX:-/bin/busybox}"
applets="sh sleep httpd wget cat ls ps ip hostname"

if ! "$busybox" --list >/dev/null 2>&1; then
  echo "mkimage: $busybox is not a working busybox (install busybox-static)" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root/bin" "$root/etc" "$root/www" "$root/tmp" "$root/root"
cp "$busybox" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
for a in $applets; do
  ln -s busybox "$root/bin/$a"
done
chmod 1777 "$root/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
printf 'hello from a mesosk3s busybox pod\n' >"$root/www/index.html"
# The image has no libraries: busybox must be static. As root, prove it by running it in
# the bare root file system.
if [ "$(id -u)" = 0 ] && ! chroot "$root" /bin/sh -c true 2>/dev/null; then
  echo "mkimage: $busybox does not run without shared libraries (install busybox-static)" >&2
  exit 1
fi

tarit() { # tarit DIR OUT: a deterministic tar of DIR's content, member names without "./"
  # shellcheck disable=SC2046 # the names are ours: no blanks
  tar --create --file "$2" --directory "$1" --sort=name --mtime=@0 \
    --owner=0 --group=0 --numeric-owner --format=gnu $(cd "$1" && LC_ALL=C ls -A)
}
sha() { sha256sum "$1" | cut -d' ' -f1; }

img="$work/img"
mkdir -p "$img"
tarit "$root" "$work/layer.tar"
layer="$(sha "$work/layer.tar")"
mkdir -p "$img/$layer"
mv "$work/layer.tar" "$img/$layer/layer.tar"
printf '1.0' >"$img/$layer/VERSION"

cat >"$work/config.json" <<EOF
{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Env":["PATH=/bin"],"Entrypoint":["/bin/sleep"],"Cmd":["2147483647"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:$layer"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"hack/mkimage.sh: busybox-static $(printf '%s' "$applets" | tr ' ' ',')"}]}
EOF
config="$(sha "$work/config.json")"
mv "$work/config.json" "$img/$config.json"
printf '{"id":"%s","config":{}}' "$layer" >"$img/$layer/json"

cat >"$img/manifest.json" <<EOF
[{"Config":"$config.json","RepoTags":["$ref"],"Layers":["$layer/layer.tar"]}]
EOF

mkdir -p "$(dirname "$out")"
tarit "$img" "$out.tmp.$$"
mv "$out.tmp.$$" "$out"
