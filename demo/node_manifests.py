"""Turns the demo's manifests into Pods the local node runs (`make demo NODE=1`).

The manifests in demo/manifests/ are written for the node agent, which runs each container's
command on this machine in the repository root. On the node (test/controlplane/node.sh) the same
Deployments run from the images image/build.sh makes from Debian packages, so this rewrites, for
each container:

- the image: poolpilot.local/demo-workload for the app (demo/workload/app.py, in /app of that
  image), poolpilot.local/pgbouncer for PgBouncer and the exporters (that image holds both
  exporters' packages); the command's path to match;
- PORT: the agent picks a free port per pod; here the app listens on 8080 of every address of its Pod,
  declared as the port named http that the readiness probe names, and prometheus.io/port says so;
- PgBouncer and the exporters run in the node's network (hostNetwork) on ports free on this
  machine: no kube-proxy runs here, so a Service's address reaches nothing, and the app's
  DATABASE_URL needs one address for PgBouncer that outlives its Pod (run.sh has already put the
  node's address where the manifests say 127.0.0.1, and PgBouncer listens there);
- PgBouncer re-reads its configuration on SIGHUP only; the kubelet rewrites a ConfigMap volume in
  place (an atomic swap of its `..data` link), so PgBouncer runs under a shell that sends it SIGHUP
  when that link changes, as a config-reloader sidecar does in a cluster;
- the app waits 2 s in preStop before SIGTERM, so that the load generator, which polls the API for
  ready Pods, stops sending to a Pod before it goes (the node agent deregistered a Pod 1 s before
  its SIGTERM).

Reads a List (JSON, as `kubectl apply --dry-run=client -o json` prints it) on stdin, writes one
on stdout.
"""

import argparse
import json
import socket
import sys

APP_PORT = 8080
WORKLOAD_SCRIPT = "demo/workload/app.py"
# PgBouncer under a shell that forwards SIGTERM and sends SIGHUP when the kubelet swaps the
# ConfigMap volume's ..data link: $1 is the configuration file, $2 the volume's directory.
PGBOUNCER_RELOADER = """/usr/sbin/pgbouncer "$1" & pid=$!
trap 'kill -TERM $pid' TERM INT
seen=$(readlink "$2/..data")
while kill -0 $pid 2>/dev/null; do
  sleep 0.2
  now=$(readlink "$2/..data")
  if [ "$now" != "$seen" ]; then seen=$now; echo "reloader: $2 changed, SIGHUP to pgbouncer"; kill -HUP $pid; fi
done
wait $pid"""


def free_port(address):
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def set_env(container, name, value):
    env = [e for e in container.get("env", []) if e["name"] != name]
    container["env"] = env + [{"name": name, "value": value}]


def on_node(deployment, workload_image, pgbouncer_image, node_address):
    template = deployment["spec"]["template"]
    pod = template["spec"]
    annotations = template.setdefault("metadata", {}).setdefault("annotations", {})
    for container in pod["containers"]:
        command = container.get("command", [])
        if command[-1:] == [WORKLOAD_SCRIPT]:
            container["image"] = workload_image
            container["command"] = ["/usr/bin/python3", "/app/app.py"]
            container.pop("workingDir", None)
            set_env(container, "PORT", str(APP_PORT))
            set_env(container, "LISTEN_ADDRESS", "0.0.0.0")
            container["ports"] = [{"name": "http", "containerPort": APP_PORT}]
            container["lifecycle"] = {"preStop": {"sleep": {"seconds": 2}}}
            annotations["prometheus.io/port"] = str(APP_PORT)
            continue
        container["image"] = pgbouncer_image
        pod["hostNetwork"] = True
        if command[:1] == ["/usr/sbin/pgbouncer"]:
            mount = next(m["mountPath"] for m in container["volumeMounts"] if command[1].startswith(m["mountPath"]))
            container["command"] = ["/bin/sh", "-c", PGBOUNCER_RELOADER, "pgbouncer-reloader", command[1], mount]
            continue
        if command[-1:] and command[-1].endswith("/debian-pgbouncer-exporter.py"):
            container["command"] = ["/usr/bin/python3", "/usr/local/bin/debian-pgbouncer-exporter.py"]
        port = free_port(node_address)
        set_env(container, "PORT", str(port))
        container["ports"] = [{"name": "http", "containerPort": port}]
        annotations["prometheus.io/port"] = str(port)
    return deployment


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--workload-image", required=True)
    ap.add_argument("--pgbouncer-image", required=True)
    ap.add_argument("--node-address", required=True)
    args = ap.parse_args()
    doc = json.load(sys.stdin)
    items = doc["items"] if doc.get("kind") == "List" else [doc]
    out = [
        on_node(item, args.workload_image, args.pgbouncer_image, args.node_address) if item["kind"] == "Deployment" else item
        for item in items
    ]
    json.dump({"apiVersion": "v1", "kind": "List", "items": out}, sys.stdout)


if __name__ == "__main__":
    main()
