#!/usr/bin/env bash
# Builds the control-plane binaries from their Go modules into a cache outside the repo, keyed by
# the pinned versions: a wrapper module under build/<component>/ pins each one, and the cache key
# is a hash of that module's files (go.mod + go.sum), so a pin change rebuilds and nothing else does.
# Prints the path of each binary on success.
#
#   build.sh [all]              etcd and kube-apiserver (the bare plane every test uses)
#   build.sh component NAME...  the named components (kube-controller-manager, kube-scheduler,
#                               kubelet: the controllers and the node, opt-in in local-up.sh;
#                               prometheus: Prometheus with Kubernetes service discovery, which
#                               Debian's build leaves out, for the node's plane)
#   build.sh path NAME          where NAME's binary is (or would be) cached
#
#   POOLPILOT_CACHE  cache root (default ~/.cache/poolpilot)
#   POOLPILOT_GO_PARALLEL  packages the go command compiles at once (go build -p; default: one per
#                  core). Each kube binary compiles about 2,000 packages: minutes on 2 cores.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${POOLPILOT_CACHE:-$HOME/.cache/poolpilot}

# component -> Go package of its main
declare -A main_package=(
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [etcd]=go.etcd.io/etcd/server/v3
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
  [kubelet]=k8s.io/kubernetes/cmd/kubelet
  [pause]=poolpilot.local/controlplane/pause
  [prometheus]=github.com/prometheus/prometheus/cmd/prometheus
)

binary_path() {
  [[ -n ${main_package[$1]:-} ]] || { echo "controlplane: unknown component '$1' (one of: ${!main_package[*]})" >&2; exit 2; }
  local component=$1 module_dir="$here/build/$1" key
  # Every file of the wrapper module: go.mod and go.sum, and pause's own source.
  key=$(cat "$module_dir"/* | sha256sum | cut -c1-12)
  echo "$cache/bin/$component-$key/$component"
}

build_component() {
  local component=$1 out
  out=$(binary_path "$component")
  if [[ -x $out ]]; then
    echo "controlplane: $component is cached at $out" >&2
    return
  fi
  command -v go >/dev/null || { echo "controlplane: 'go' is not on PATH; install Go >= 1.23 to build $component" >&2; exit 1; }
  echo "controlplane: building $component from $(grep -m1 -E '^(require|module) ' "$here/build/$component/go.mod" | cut -d' ' -f2-) (takes minutes on 2 cores)..." >&2
  local started=$SECONDS tmp ldflags=""
  if [[ ${main_package[$component]} == k8s.io/kubernetes/* ]]; then
    # Stamp the real version (a module build otherwise reports v0.0.0-master), so /version and
    # kubectl's skew check see what was built.
    local version
    version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' "$here/build/$component/go.mod")
    local minor=${version#v1.}; minor=${minor%%.*}
    ldflags="-X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  fi
  if [[ $component == prometheus ]]; then
    # The module's v0.55.1 is Prometheus 2.55.1; --version says so.
    local version
    version=$(awk '$1 == "require" && $2 == "github.com/prometheus/prometheus" { print $3 }' "$here/build/$component/go.mod")
    ldflags="-X github.com/prometheus/common/version.Version=2.${version#v0.}"
  fi
  tmp=$(mktemp -d "$cache/tmp.XXXXXX" 2>/dev/null || { mkdir -p "$cache" && mktemp -d "$cache/tmp.XXXXXX"; })
  # Progress: the go command names each package it compiles (-v); show a running count and
  # pass errors through.
  # pause runs alone in an otherwise empty image: a static binary.
  local cgo=${CGO_ENABLED:-}
  [[ $component == pause ]] && cgo=0
  if ! (cd "$here/build/$component" && CGO_ENABLED=$cgo go build -mod=readonly -p "${POOLPILOT_GO_PARALLEL:-$(nproc)}" -v -ldflags="$ldflags" -o "$tmp/$component" "${main_package[$component]}" 2>&1) |
    awk -v c="$component" '/^(#|go: |.*\.go:[0-9]+)/ { print > "/dev/stderr"; next }
                           { n++; if (n % 100 == 0) { printf "controlplane: %s: %d packages compiled\n", c, n > "/dev/stderr"; fflush("/dev/stderr") } }' ||
    [[ ! -x $tmp/$component ]]; then
    echo "controlplane: building $component failed (see the errors above)" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$out")"
  mv "$tmp/$component" "$out"
  rmdir "$tmp"
  echo "controlplane: built $component in $((SECONDS - started))s -> $out" >&2
}

case "${1:-all}" in
  path) binary_path "$2" ;;
  all)
    build_component etcd
    build_component kube-apiserver
    binary_path etcd
    binary_path kube-apiserver
    ;;
  component)
    shift
    for component in "$@"; do binary_path "$component" >/dev/null; done
    for component in "$@"; do build_component "$component"; done
    for component in "$@"; do binary_path "$component"; done
    ;;
  *) echo "usage: $0 [all | component NAME... | path NAME]" >&2; exit 2 ;;
esac
