"""Bundled checks for sentinel's exec probes, following the Nagios plugin conventions.

Each is a script, run as `python -m sentinel.checks.NAME` (what `exec = { check = "NAME" }`
does) or as `python checks/NAME.py`; each prints one line, `NAME STATUS - summary | perfdata`,
and exits 0 OK, 1 WARNING, 2 CRITICAL or 3 UNKNOWN. `--help` describes each one.

- heartbeat: a file's modification time is recent (workers that listen on no port).
- memory: the resident memory of a process tree ($SENTINEL_PID and its descendants).
- http_json: one field of a JSON document fetched over HTTP has the expected value.
- redis_ping: a Redis server answers PING with PONG (TCP or unix socket, optional AUTH).
- postgres_ready: a PostgreSQL server accepts connections, like pg_isready.

They use the standard library only and nothing from sentinel, so they also run on their own.
`_nagios` holds what they share: exit codes, duration and size arguments, the runner.
"""
