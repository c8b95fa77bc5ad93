#!/usr/bin/env bash
# Builds the project's container images on this machine, with no registry and no Docker engine:
# buildah (Debian) in a store of its own under the cache, pulls off.
#
#   image/build.sh bases     the two base images the Dockerfile names, made here (see below)
#   image/build.sh operator  the operator image from the Dockerfile (makes the bases first)
#   image/build.sh pause     the pod sandbox image for the local node: the static pause binary
#                            that test/controlplane/build.sh builds, alone in an image
#   image/build.sh demo      the demo's images, Debian packages only (no Dockerfile, no base to
#                            pull): poolpilot.local/demo-workload (python3 + the SQLAlchemy,
#                            psycopg2, redis and prometheus-client packages, demo/workload/ in /app)
#                            and poolpilot.local/pgbouncer (pgbouncer, Debian's
#                            prometheus-pgbouncer-exporter and test/support/debian-pgbouncer-
#                            exporter.py, which runs it against PgBouncer >= 1.8, Debian's
#                            prometheus-postgres-exporter, and demo/pgbouncer_reloader.py);
#                            prints both names
#   image/build.sh archive operator|pause|demo-workload|pgbouncer
#                            that image, also saved as a docker-archive for containerd
#                            (`ctr -n k8s.io images import`); prints the archive's path last
#
# Prints the image name (and the archive path) on stdout; progress on stderr.
#
# The Dockerfile's bases cannot be pulled here, so they are made locally and tagged with the
# names the Dockerfile uses, in this store only (a normal build pulls the real ones):
#   docker.io/library/node:24-bookworm-slim  Debian bookworm `minbase` + ca-certificates
#       (mmdebstrap from the machine's apt sources), Node 24 from the project's `node` npm
#       package (node_modules/node/bin/node) in /usr/local/bin and the machine's npm in
#       /usr/local/lib/node_modules/npm, as the official image lays them out.
#   gcr.io/distroless/nodejs24-debian12:nonroot  Debian bookworm libc6, libgcc-s1, libstdc++6
#       and tzdata, extracted without maintainer scripts (mmdebstrap `extract`: no shell, no
#       package manager, as distroless), Debian's CA bundle, the same Node 24 in /nodejs/bin,
#       user nonroot (65532), as the distroless image lays them out.
#
# Each image carries the hash of its inputs in the label io.poolpilot.inputs and is rebuilt only
# when they change: for the bases the function that makes them, the node binary and npm's version; for the
# operator image the Dockerfile, .dockerignore, package files, tsconfig files, src/ and the bases.
#
#   POOLPILOT_CACHE  cache root (default ~/.cache/poolpilot); images under $POOLPILOT_CACHE/images
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cache=${POOLPILOT_CACHE:-$HOME/.cache/poolpilot}/images
log() { echo "image: $*" >&2; }

build_base=docker.io/library/node:24-bookworm-slim
run_base=gcr.io/distroless/nodejs24-debian12:nonroot
operator_repository=poolpilot.local/poolpilot

for tool in buildah mmdebstrap; do
  command -v "$tool" >/dev/null || { log "'$tool' is missing: run 'make install' (Debian: buildah mmdebstrap)"; exit 1; }
done

# Overlay works in this sandbox (checked: buildah 1.28 as root); vfs is the fallback where the
# kernel refuses an overlay mount (POOLPILOT_BUILDAH_DRIVER=vfs).
store() {
  buildah --root "$cache/storage" --runroot "$cache/run" --storage-driver "${POOLPILOT_BUILDAH_DRIVER:-overlay}" "$@"
}

# The inputs hash an image was built from, or nothing if there is no such image.
built_from() {
  store inspect --type image --format '{{index .OCIv1.Config.Labels "io.poolpilot.inputs"}}' "$1" 2>/dev/null || true
}

node_binary=$root/node_modules/node/bin/node
npm_dir=$(npm root -g)/npm

bases_hash() {
  [[ -x $node_binary ]] || { log "$node_binary is missing: run 'make install' (npm ci)"; exit 1; }
  {
    # How the bases are made, not the rest of this script: editing the operator's part does not
    # make the bases again.
    declare -f make_bases
    echo "$build_base $run_base"
    sha256sum <"$node_binary"
    "$node_binary" -p "require('$npm_dir/package.json').version"
  } | sha256sum | cut -c1-16
}

make_bases() {
  local hash
  hash=$(bases_hash)
  if [[ $(built_from "$build_base") == "$hash" && $(built_from "$run_base") == "$hash" ]]; then
    log "bases are current ($hash)"
    return
  fi
  local started=$SECONDS work
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/work.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" RETURN EXIT
  log "making $build_base: mmdebstrap bookworm minbase (about 30 s)"
  mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm "$work/build-rootfs.tar"
  log "making $run_base: mmdebstrap bookworm extract of libc6, libgcc-s1, libstdc++6, tzdata"
  mmdebstrap --quiet --variant=extract --include=libc6,libgcc-s1,libstdc++6,tzdata bookworm "$work/run-rootfs.tar"

  # What the official image adds to Debian: node, npm and npx in /usr/local, a `node` user.
  mkdir -p "$work/node/usr/local/bin" "$work/node/usr/local/lib/node_modules"
  cp "$node_binary" "$work/node/usr/local/bin/node"
  cp -r "$npm_dir" "$work/node/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$work/node/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$work/node/usr/local/bin/npx"
  local container
  container=$(store from --quiet scratch)
  store add --quiet "$container" "$work/build-rootfs.tar" / >/dev/null
  tar --numeric-owner -C "$work/node" -cf "$work/node.tar" .
  store add --quiet "$container" "$work/node.tar" / >/dev/null
  store run --isolation chroot --network host "$container" -- sh -c \
    'echo node:x:1000:1000::/home/node:/bin/bash >>/etc/passwd && echo node:x:1000: >>/etc/group &&
     mkdir -p /home/node && chown 1000:1000 /home/node && node --version >/dev/null && npm --version >/dev/null'
  store config --env NODE_VERSION="$("$node_binary" --version)" --cmd node \
    --label io.poolpilot.inputs="$hash" --label io.poolpilot.made-locally="mmdebstrap bookworm minbase + node npm package" \
    "$container"
  store commit --quiet --rm "$container" "$build_base" >/dev/null

  # What distroless adds: /etc/passwd and /etc/group with root, nobody and nonroot, a CA
  # bundle, a world-writable /tmp, node in /nodejs/bin.
  mkdir -p "$work/distroless/etc/ssl/certs" "$work/distroless/nodejs/bin" "$work/distroless/home/nonroot" "$work/distroless/tmp"
  tar -xOf "$work/build-rootfs.tar" ./etc/ssl/certs/ca-certificates.crt >"$work/distroless/etc/ssl/certs/ca-certificates.crt"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$work/distroless/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$work/distroless/etc/group"
  cp "$node_binary" "$work/distroless/nodejs/bin/node"
  chmod 1777 "$work/distroless/tmp"
  chown 65532:65532 "$work/distroless/home/nonroot"
  tar --numeric-owner -C "$work/distroless" -cf "$work/distroless.tar" .
  container=$(store from --quiet scratch)
  store add --quiet "$container" "$work/run-rootfs.tar" / >/dev/null
  store add --quiet "$container" "$work/distroless.tar" / >/dev/null
  store run --isolation chroot --network host "$container" -- /nodejs/bin/node -e 'process.exit(0)'
  store config --user 65532 --workingdir /home/nonroot --entrypoint '["/nodejs/bin/node"]' \
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --label io.poolpilot.inputs="$hash" --label io.poolpilot.made-locally="mmdebstrap bookworm extract + node npm package" \
    "$container"
  store commit --quiet --rm "$container" "$run_base" >/dev/null
  log "bases made in $((SECONDS - started))s ($hash)"
}

operator_hash() {
  (
    cd "$root"
    bases_hash
    cat Dockerfile .dockerignore package.json package-lock.json tsconfig.json build.js
    find src -type f | LC_ALL=C sort | xargs sha256sum
  ) | sha256sum | cut -c1-12
}

# Prints the operator image's name.
make_operator() {
  make_bases
  local hash image
  hash=$(operator_hash)
  image=$operator_repository:$hash
  if [[ $(built_from "$image") == "$hash" ]]; then
    log "$image is current"
    echo "$image"
    return
  fi
  local started=$SECONDS
  log "building $image from the Dockerfile (pulls off)"
  # --isolation chroot --network host: the build stages run `npm ci`, which needs the npm
  # registry. This machine reaches it through a TLS proxy whose CA is in the machine's bundle and
  # npm's global config (cafile), so both are mounted read-only into the RUN steps, at the paths
  # npm in the base reads; the image keeps neither.
  local mounts=()
  [[ -f /etc/npmrc ]] && mounts+=(--volume /etc/npmrc:/usr/local/etc/npmrc:ro)
  [[ -f /etc/ssl/certs/ca-certificates.crt ]] && mounts+=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
  (cd "$root" && store bud --quiet --pull=never --isolation chroot --network host "${mounts[@]}" \
    --label io.poolpilot.inputs="$hash" --tag "$image" --file Dockerfile . >&2)
  log "built $image in $((SECONDS - started))s"
  prune_images "$operator_repository"
  echo "$image"
}

# prune_images REPOSITORY: keeps its newest 3 images (each build of changed inputs adds one of
# 100-250 MB, and its archive) and drops dangling ones (build stages' leftovers). The store is
# shared by every worktree on the machine, so a few are kept, not only the newest.
prune_images() {
  local repository=$1 keep=3 tag
  store images --filter reference="$repository" --format '{{.Tag}}' | tail -n +$((keep + 1)) | while read -r tag; do
    store rmi "$repository:$tag" >/dev/null 2>&1 || true
    rm -f "$cache/archives/${repository##*/}-$tag.tar"
  done
  store rmi --prune >/dev/null 2>&1 || true
}

# Prints the pause image's name. Its tag is the hash of the pause module's files.
make_pause() {
  local binary hash image
  binary=$(bash "$root/test/controlplane/build.sh" component pause)
  hash=$(basename "$(dirname "$binary")"); hash=${hash#pause-}
  image=poolpilot.local/pause:$hash
  if [[ $(built_from "$image") == "$hash" ]]; then
    echo "$image"
    return
  fi
  local container
  container=$(store from --quiet scratch)
  store copy --quiet "$container" "$binary" /pause >/dev/null
  store config --entrypoint '["/pause"]' --user 65535:65535 --label io.poolpilot.inputs="$hash" "$container"
  store commit --quiet --rm "$container" "$image" >/dev/null
  log "built $image"
  echo "$image"
}

# debian_image NAME ENTRYPOINT_JSON USER FILES_DIR CHECK PACKAGE...: bookworm minbase with the
# packages (mmdebstrap, maintainer scripts run), FILES_DIR's contents added at /, run as USER;
# the shell command CHECK must succeed in it as USER before it is committed. Prints the image's
# name; its tag is the hash of this function, its arguments and FILES_DIR's files.
debian_image() {
  local name=$1 entrypoint=$2 user=$3 files=$4 check=$5; shift 5
  local hash image
  hash=$({
    declare -f debian_image
    echo "$name $entrypoint $user $check $*"
    (cd "$files" && find . -type f | LC_ALL=C sort | xargs sha256sum)
  } | sha256sum | cut -c1-12)
  image=poolpilot.local/$name:$hash
  if [[ $(built_from "$image") == "$hash" ]]; then
    echo "$image"
    return
  fi
  local started=$SECONDS work container packages
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/work.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" RETURN EXIT
  packages=$(IFS=,; echo "$*")
  log "making $image: mmdebstrap bookworm minbase + $packages"
  mmdebstrap --quiet --variant=minbase --include="$packages" bookworm "$work/rootfs.tar"
  tar --numeric-owner --owner=0 --group=0 -C "$files" -cf "$work/files.tar" .
  container=$(store from --quiet scratch)
  store add --quiet "$container" "$work/rootfs.tar" / >/dev/null
  store add --quiet "$container" "$work/files.tar" / >/dev/null
  store run --isolation chroot --network host --user "$user" "$container" -- sh -c "$check" >&2
  store config --entrypoint "$entrypoint" --cmd '' --user "$user" --env PYTHONUNBUFFERED=1 \
    --label io.poolpilot.inputs="$hash" --label io.poolpilot.made-locally="mmdebstrap bookworm minbase + $packages" \
    "$container"
  store commit --quiet --rm "$container" "$image" >/dev/null
  log "made $image in $((SECONDS - started))s"
  prune_images "poolpilot.local/$name"
  echo "$image"
}

# Prints the two demo images' names, workload first.
make_demo() {
  local work
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/demo-files.XXXXXX")
  mkdir -p "$work/workload/app" "$work/pgbouncer/usr/local/bin"
  cp "$root"/demo/workload/*.py "$work/workload/app/"
  cp "$root/test/support/debian-pgbouncer-exporter.py" "$root/demo/pgbouncer_reloader.py" "$work/pgbouncer/usr/local/bin/"
  # Users as the Debian packages make them: nobody for the app, postgres (pgbouncer's package)
  # for PgBouncer, which refuses to run as root.
  debian_image demo-workload '["/usr/bin/python3", "/app/app.py"]' nobody "$work/workload" \
    "cd /app && python3 -c 'import sqlalchemy, psycopg2, redis, prometheus_client, poolconfig, poolmetrics, resizable_pools'" \
    python3 python3-sqlalchemy python3-psycopg2 python3-redis python3-prometheus-client
  debian_image pgbouncer '["/usr/sbin/pgbouncer"]' postgres "$work/pgbouncer" \
    'pgbouncer --version && python3 /usr/local/bin/debian-pgbouncer-exporter.py --version && prometheus-postgres-exporter --version && python3 /usr/local/bin/pgbouncer_reloader.py --help >/dev/null' \
    pgbouncer prometheus-pgbouncer-exporter prometheus-postgres-exporter
  rm -rf "$work"
}

case "${1:-operator}" in
  bases) make_bases ;;
  operator) make_operator ;;
  pause) make_pause ;;
  demo) make_demo ;;
  archive)
    case ${2:-} in
      operator) image=$(make_operator) ;;
      pause) image=$(make_pause) ;;
      demo-workload) image=$(make_demo | sed -n 1p) ;;
      pgbouncer) image=$(make_demo | sed -n 2p) ;;
      *) echo "usage: $0 archive operator|pause|demo-workload|pgbouncer" >&2; exit 2 ;;
    esac
    archive=$cache/archives/${image##*/}.tar
    archive=${archive/:/-}
    if [[ ! -f $archive ]]; then
      mkdir -p "$cache/archives"
      store push --quiet "$image" "docker-archive:$archive.partial:$image" >&2
      mv "$archive.partial" "$archive"
    fi
    echo "$image"
    echo "$archive"
    ;;
  *) echo "usage: $0 [bases | operator | pause | demo | archive operator|pause|demo-workload|pgbouncer]" >&2; exit 2 ;;
esac
