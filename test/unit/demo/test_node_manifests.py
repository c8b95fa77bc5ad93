"""Run by test/unit/demo/poolmetrics.test.ts with Debian's /usr/bin/python3 -m unittest: how
demo/node_manifests.py rewrites the demo's manifests for real Pods (make demo NODE=1)."""
import importlib.util
import os
import unittest

_spec = importlib.util.spec_from_file_location(
    "node_manifests", os.path.join(os.path.dirname(__file__), "..", "..", "..", "demo", "node_manifests.py"))
node_manifests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(node_manifests)


def deployment(name, container, annotations=None, volumes=None):
    template = {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}
    if annotations is not None:
        template["metadata"]["annotations"] = annotations
    if volumes is not None:
        template["spec"]["volumes"] = volumes
    return {"kind": "Deployment", "metadata": {"name": name, "namespace": "demo"}, "spec": {"template": template}}


def on_node_all(d):
    return node_manifests.on_node(d, "poolpilot.local/demo-workload:1", "poolpilot.local/pgbouncer:1", "127.0.0.1",
                                  "10.213.0.1:6443")


def on_node(d):
    deployment_on_node, *_ = on_node_all(d)
    return deployment_on_node


class OnNode(unittest.TestCase):
    def test_the_app_runs_from_its_image_on_8080_in_its_pod_network(self):
        app = {"name": "api", "image": "example.invalid/x", "command": ["/usr/bin/python3", "demo/workload/app.py"],
               "env": [{"name": "PORT", "value": "1"}, {"name": "DB_POOL_SIZE", "value": "10"}]}
        spec = on_node(deployment("voiceassist-api", app, {"prometheus.io/scrape": "true"}))["spec"]["template"]
        container = spec["spec"]["containers"][0]
        self.assertEqual(container["image"], "poolpilot.local/demo-workload:1")
        self.assertEqual(container["command"], ["/usr/bin/python3", "/app/app.py"])
        self.assertEqual(container["env"], [{"name": "DB_POOL_SIZE", "value": "10"}, {"name": "PORT", "value": "8080"},
                                            {"name": "LISTEN_ADDRESS", "value": "0.0.0.0"}])
        self.assertEqual(container["ports"], [{"name": "http", "containerPort": 8080}])
        self.assertEqual(container["lifecycle"], {"preStop": {"sleep": {"seconds": 2}}})
        self.assertEqual(spec["metadata"]["annotations"], {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"})
        self.assertNotIn("hostNetwork", spec["spec"])

    def test_pgbouncer_runs_in_the_node_network_under_a_reloader_that_watches_its_configmap(self):
        pgbouncer = {"name": "pgbouncer", "image": "example.invalid/p", "command": ["/usr/sbin/pgbouncer", "/etc/pgbouncer/pgbouncer.ini"],
                     "volumeMounts": [{"name": "config", "mountPath": "/etc/pgbouncer"}]}
        objects = on_node_all(deployment("pgbouncer", pgbouncer, volumes=[{"name": "config", "configMap": {"name": "pgbouncer-config"}}]))
        pod = objects[0]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        self.assertTrue(pod["hostNetwork"])
        self.assertEqual(container["image"], "poolpilot.local/pgbouncer:1")
        self.assertEqual(container["command"], ["/usr/bin/python3", "/usr/local/bin/pgbouncer_reloader.py", "--configmap", "pgbouncer-config",
                                                "--dir", "/etc/pgbouncer", "--ini", "pgbouncer.ini"])
        self.assertEqual(container["env"], [{"name": "KUBERNETES_SERVICE_HOST", "value": "10.213.0.1"},
                                            {"name": "KUBERNETES_SERVICE_PORT", "value": "6443"}])
        self.assertEqual(pod["volumes"], [{"name": "config", "emptyDir": {}}])
        self.assertEqual(pod["serviceAccountName"], "pgbouncer-reloader")
        self.assertEqual([(o["kind"], o["metadata"]["name"]) for o in objects[1:]],
                         [("ServiceAccount", "pgbouncer-reloader"), ("Role", "pgbouncer-reloader"), ("RoleBinding", "pgbouncer-reloader")])
        self.assertEqual(objects[2]["rules"], [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["pgbouncer-config"],
                                                "verbs": ["get", "watch"]}])

    def test_an_exporter_gets_a_free_port_of_the_node_and_says_so(self):
        exporter = {"name": "exporter", "command": ["/usr/bin/python3", "/repo/test/support/debian-pgbouncer-exporter.py"],
                    "args": ["--port", "$(PORT)"]}
        spec = on_node(deployment("pgbouncer-exporter", exporter, {"prometheus.io/scrape": "true"}))["spec"]["template"]
        container = spec["spec"]["containers"][0]
        port = container["ports"][0]["containerPort"]
        self.assertEqual(container["command"], ["/usr/bin/python3", "/usr/local/bin/debian-pgbouncer-exporter.py"])
        self.assertEqual(container["env"], [{"name": "PORT", "value": str(port)}])
        self.assertEqual(spec["metadata"]["annotations"]["prometheus.io/port"], str(port))
        self.assertTrue(spec["spec"]["hostNetwork"])


if __name__ == "__main__":
    unittest.main()
