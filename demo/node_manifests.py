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
- PgBouncer re-reads its configuration on SIGHUP only, and the kubelet rewrites a ConfigMap
  volume only on its next sync of the Pod (a minute by default): PgBouncer runs under
  demo/pgbouncer_reloader.py, which watches its ConfigMap through the API as the Pod's own
  ServiceAccount (pgbouncer-reloader, allowed get and watch on that ConfigMap alone), writes it
  into an emptyDir in place of the volume and sends SIGHUP at once;
- the app waits 2 s in preStop before SIGTERM, so that the load generator, which polls the API for
  ready Pods, stops sending to a Pod before it goes (the node agent deregistered a Pod 1 s before
  its SIGTERM).

Reads a List (JSON, as `kubectl apply --dry-run=client -o json` prints it) on stdin, writes one
on stdout.
"""

import argparse
import json
import os
import socket
import sys

APP_PORT = 8080
WORKLOAD_SCRIPT = "demo/workload/app.py"
RELOADER = "pgbouncer-reloader"


def free_port(address):
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def set_env(container, name, value):
    env = [e for e in container.get("env", []) if e["name"] != name]
    container["env"] = env + [{"name": name, "value": value}]


def reloader_access(namespace, configmap):
    """The reloader's ServiceAccount, allowed to read and watch PgBouncer's ConfigMap and no other."""
    meta = {"name": RELOADER, "namespace": namespace}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
         # a watch with fieldSelector metadata.name=<name> is authorized as a request for that name
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [configmap], "verbs": ["get", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": RELOADER},
         "subjects": [{"kind": "ServiceAccount", "name": RELOADER, "namespace": namespace}]},
    ]


def under_reloader(pod, container, api_server):
    """PgBouncer's container runs the reloader; its ConfigMap volume becomes an emptyDir the reloader
    writes. Returns the ConfigMap's name."""
    config, mount = container["command"][1], None
    for m in container["volumeMounts"]:
        if config.startswith(m["mountPath"] + "/"):
            mount = m
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    configmap = volume.pop("configMap")["name"]
    volume["emptyDir"] = {}
    container["command"] = ["/usr/bin/python3", "/usr/local/bin/pgbouncer_reloader.py", "--configmap", configmap,
                            "--dir", mount["mountPath"], "--ini", os.path.relpath(config, mount["mountPath"])]
    host, port = api_server.rsplit(":", 1)
    set_env(container, "KUBERNETES_SERVICE_HOST", host)  # no kube-proxy routes the Service's address
    set_env(container, "KUBERNETES_SERVICE_PORT", port)
    pod["serviceAccountName"] = RELOADER
    return configmap


def on_node(deployment, workload_image, pgbouncer_image, node_address, api_server):
    """The Deployment rewritten for the node, and the objects it needs beside it."""
    extra = []
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
            configmap = under_reloader(pod, container, api_server)
            extra = reloader_access(deployment["metadata"]["namespace"], configmap)
            continue
        if command[-1:] and command[-1].endswith("/debian-pgbouncer-exporter.py"):
            container["command"] = ["/usr/bin/python3", "/usr/local/bin/debian-pgbouncer-exporter.py"]
        port = free_port(node_address)
        set_env(container, "PORT", str(port))
        container["ports"] = [{"name": "http", "containerPort": port}]
        annotations["prometheus.io/port"] = str(port)
    return [deployment, *extra]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--workload-image", required=True)
    ap.add_argument("--pgbouncer-image", required=True)
    ap.add_argument("--node-address", required=True)
    ap.add_argument("--api-server", required=True, help="host:port of the API server, as Pods reach it")
    args = ap.parse_args()
    doc = json.load(sys.stdin)
    items = doc["items"] if doc.get("kind") == "List" else [doc]
    out = []
    for item in items:
        if item["kind"] == "Deployment":
            out += on_node(item, args.workload_image, args.pgbouncer_image, args.node_address, args.api_server)
        else:
            out.append(item)
    json.dump({"apiVersion": "v1", "kind": "List", "items": out}, sys.stdout)


if __name__ == "__main__":
    main()
