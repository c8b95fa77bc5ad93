#!/usr/bin/python3
"""Debian's prometheus-pgbouncer-exporter (1.7) for PgBouncer 1.8 and later; takes its flags.

The packaged exporter exports SHOW STATS column total_requests as pgbouncer_requests_total.
PgBouncer 1.8 renamed that column total_query_count, so against Debian's PgBouncer (1.18) the
packaged command dies at start-up with KeyError: 'total_requests'. This reads the renamed
column into the same metric and then runs the packaged command's own main(): same flags, same
metrics, nothing else changed. The tests and the demo run it with /usr/bin/python3.
"""
import sys

try:
    from prometheus_pgbouncer_exporter import cli, collectors
except ImportError:
    sys.exit("prometheus_pgbouncer_exporter is missing: install the Debian package "
             "prometheus-pgbouncer-exporter (make install)")

stats = dict(collectors.StatsCollector.metrics)
if 'total_requests' in stats:
    stats['total_query_count'] = stats.pop('total_requests')
collectors.StatsCollector.metrics = stats

sys.argv[0] = 'prometheus-pgbouncer-exporter'
sys.exit(cli.main())
