// The pod sandbox ("pause") container's process for the local node: no registry is reachable,
// so containerd's sandbox image is built here (image/build.sh pause). No dependencies.
module poolpilot.local/controlplane/pause

go 1.23.0
