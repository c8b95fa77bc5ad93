"""Run by test/unit/demo/poolmetrics.test.ts with Debian's /usr/bin/python3 -m unittest: the parts of
demo/pgbouncer_reloader.py that need no API server and no PgBouncer."""
import importlib.util
import os
import tempfile
import unittest

_spec = importlib.util.spec_from_file_location(
    "pgbouncer_reloader", os.path.join(os.path.dirname(__file__), "..", "..", "..", "demo", "pgbouncer_reloader.py"))
reloader = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reloader)


class WriteFiles(unittest.TestCase):
    def test_each_key_becomes_a_file_replaced_whole(self):
        with tempfile.TemporaryDirectory() as directory:
            self.assertEqual(reloader.write_files(directory, {"userlist.txt": '"app" ""\n', "pgbouncer.ini": "a = 1\n"}),
                             ["pgbouncer.ini", "userlist.txt"])
            reloader.write_files(directory, {"pgbouncer.ini": "a = 2\n"})
            with open(os.path.join(directory, "pgbouncer.ini")) as f:
                self.assertEqual(f.read(), "a = 2\n")
            self.assertEqual(sorted(os.listdir(directory)), ["pgbouncer.ini", "userlist.txt"])  # no .new left


class Events(unittest.TestCase):
    def test_watch_lines_become_events_blank_lines_skipped(self):
        lines = ['{"type": "MODIFIED", "object": {"data": {"k": "v"}}}\n', "\n",
                 '{"type": "ERROR", "object": {"code": 410}}']
        self.assertEqual(list(reloader.events(lines)), [("MODIFIED", {"data": {"k": "v"}}), ("ERROR", {"code": 410})])


if __name__ == "__main__":
    unittest.main()
