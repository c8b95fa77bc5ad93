#!/usr/bin/python3
"""Runs PgBouncer with its configuration from a ConfigMap it watches through the API, and sends it
SIGHUP (= RELOAD) as soon as the ConfigMap changes. `make demo NODE=1` runs PgBouncer this way.

Why not the ConfigMap mounted as a volume: the kubelet rewrites a ConfigMap volume on its next sync
of the Pod (syncFrequency, 1 min by default; median 57 s measured on the local node), so a
default_pool_size that poolpilot raises for a queue reaches PgBouncer about a minute later. A
reloader that watches the API, as config-reloader sidecars that read the API do, gets the change
within a second.

  pgbouncer_reloader.py --configmap NAME --dir DIR [--ini pgbouncer.ini]

Every key of the ConfigMap's data is written to DIR/<key> (DIR is an emptyDir: the reloader's own,
writable), each file replaced by a rename so PgBouncer never reads half a file; PgBouncer runs as
a child with DIR/<ini> and DIR as its working directory (a relative auth_file resolves there). The
API is reached as the Pod's ServiceAccount (its token and CA, mounted by the kubelet) at
KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT; it needs get and watch on that ConfigMap.
SIGTERM and SIGINT go to PgBouncer; the reloader exits with PgBouncer's exit code. A watch that
ends or fails is started again after a fresh read (so a change made in between is not missed).
"""
import argparse
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def log(message):
    print(f"pgbouncer-reloader: {message}", file=sys.stderr, flush=True)


def write_files(directory, data):
    """Writes each key of data to directory/<key>, each by a rename. Returns the keys written."""
    for key, value in sorted(data.items()):
        path = os.path.join(directory, key)
        with open(f"{path}.new", "w") as f:
            f.write(value)
        os.replace(f"{path}.new", path)
    return sorted(data)


def events(lines):
    """The (type, object) of each watch event in a stream of JSON lines; blank lines skipped."""
    for line in lines:
        line = line.strip()
        if line:
            event = json.loads(line)
            yield event.get("type"), event.get("object", {})


class Api:
    def __init__(self, name):
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ["KUBERNETES_SERVICE_PORT"]
        with open(os.path.join(SERVICE_ACCOUNT, "namespace")) as f:
            namespace = f.read().strip()
        self.base = f"https://{host}:{port}/api/v1/namespaces/{namespace}/configmaps"
        self.name = name
        self.context = ssl.create_default_context(cafile=os.path.join(SERVICE_ACCOUNT, "ca.crt"))

    def _open(self, url, timeout):
        with open(os.path.join(SERVICE_ACCOUNT, "token")) as f:  # the kubelet rotates it
            token = f.read().strip()
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        return urllib.request.urlopen(request, context=self.context, timeout=timeout)

    def read(self):
        with self._open(f"{self.base}/{self.name}", 10) as r:
            return json.load(r)

    def watch(self, resource_version):
        query = urllib.parse.urlencode({"watch": "1", "fieldSelector": f"metadata.name={self.name}",
                                        "resourceVersion": resource_version, "timeoutSeconds": "300"})
        response = self._open(f"{self.base}?{query}", 330)
        return response, events(line.decode() for line in response)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--configmap", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--ini", default="pgbouncer.ini")
    args = ap.parse_args()

    api = Api(args.configmap)
    configmap = api.read()
    log(f"wrote {', '.join(write_files(args.dir, configmap.get('data', {})))} of ConfigMap {args.configmap}")
    pgbouncer = subprocess.Popen(["/usr/sbin/pgbouncer", os.path.join(args.dir, args.ini)], cwd=args.dir)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda s, _frame: pgbouncer.send_signal(s))

    def apply(new):
        nonlocal configmap
        if new.get("data") != configmap.get("data"):
            write_files(args.dir, new.get("data", {}))
            pgbouncer.send_signal(signal.SIGHUP)
            log(f"ConfigMap {args.configmap} changed (resourceVersion {new['metadata']['resourceVersion']}): SIGHUP to pgbouncer")
        configmap = new

    def follow():
        while pgbouncer.poll() is None:
            try:
                response, stream = api.watch(configmap["metadata"]["resourceVersion"])
                with response:
                    for kind, obj in stream:
                        if kind in ("ADDED", "MODIFIED"):
                            apply(obj)
                        elif kind == "ERROR":  # e.g. 410 Gone: the version is too old
                            break
                apply(api.read())
            except (OSError, ValueError) as err:
                log(f"watch failed ({err}); reading again in 1 s")
                time.sleep(1)
                try:
                    apply(api.read())
                except (OSError, ValueError):
                    pass

    threading.Thread(target=follow, daemon=True).start()
    sys.exit(pgbouncer.wait())


if __name__ == "__main__":
    main()
