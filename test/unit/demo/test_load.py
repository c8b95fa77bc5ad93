"""Run by test/unit/demo/poolmetrics.test.ts with Debian's /usr/bin/python3 -m unittest: the
seeded load of demo/load.py (no app, no PostgreSQL)."""
import importlib.util
import itertools
import os
import unittest

_spec = importlib.util.spec_from_file_location("demo_load", os.path.join(os.path.dirname(__file__), "..", "..", "..", "demo", "load.py"))
load = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(load)


def requests(seed, phases):
    """Every request of a whole trace as (time from the start, hold), the way load.main() starts users."""
    starts = [sum(seconds for _, seconds in phases[:i]) for i in range(len(phases) + 1)]
    out, on, started = [], 0, 0
    for index, (want, _seconds) in enumerate(phases):
        while on < want:
            span = load.user_span(phases, starts, index, on)
            schedule = load.user_schedule(load.user_random(seed, started), span.start, 0.6, 0.2, 0.6)
            out += list(itertools.takewhile(lambda r, stop=span.stop: r[0] < stop, schedule))
            on += 1
            started += 1
        on = min(on, want)
    return sorted(out)


class SeededLoad(unittest.TestCase):
    T2 = [(5, 15), (120, 60), (20, 40), (120, 60), (20, 20)]

    def test_same_seed_same_requests(self):
        self.assertEqual(requests("1-T2-r1", self.T2), requests("1-T2-r1", self.T2))

    def test_other_seed_other_requests(self):
        self.assertNotEqual(requests("1-T2-r1", self.T2), requests("1-T2-r2", self.T2))

    def test_users_leave_newest_first_and_the_second_peak_brings_new_users(self):
        starts = [0, 15, 75, 115, 175, 195]
        first_peak_user = load.user_span(self.T2, starts, 1, 100)
        base_user = load.user_span(self.T2, starts, 0, 3)
        self.assertEqual((first_peak_user.start, first_peak_user.stop), (15, 75))
        self.assertEqual((base_user.start, base_user.stop), (0, 195))
        # about 120 users / 0.6 s over 60 s in each peak
        peak = [r for r in requests("1", self.T2) if 75 + 40 <= r[0] < 175]
        self.assertTrue(11000 < len(peak) < 13000, len(peak))


def pod(ip, ready=True, deleting=False, ports=({"name": "http", "containerPort": 8080},)):
    metadata = {"name": f"api-{ip}"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-07T12:00:00Z"
    status = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"] = ip
    return {"metadata": metadata, "spec": {"containers": [{"name": "api", "ports": list(ports)}]}, "status": status}


class ReadyPodEndpoints(unittest.TestCase):
    """What demo/load.py --pods-from-api sends to on a real node: a Service's endpoints, by hand."""

    def test_ready_pods_at_the_port_named_http_sorted(self):
        pods = [pod("10.213.0.12"), pod("10.213.0.9", ports=({"name": "metrics", "containerPort": 9000}, {"name": "http", "containerPort": 8081}))]
        self.assertEqual(load.ready_pod_endpoints(pods), ["10.213.0.12:8080", "10.213.0.9:8081"])

    def test_not_ready_terminating_unscheduled_or_portless_pods_get_nothing(self):
        pods = [pod("10.213.0.2", ready=False), pod("10.213.0.3", deleting=True), pod(None), pod("10.213.0.4", ports=()),
                {"metadata": {"name": "pending"}, "spec": {"containers": [{"name": "api"}]}}]
        self.assertEqual(load.ready_pod_endpoints(pods), [])


if __name__ == "__main__":
    unittest.main()
