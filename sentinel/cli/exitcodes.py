"""The exit codes of every command (with several hosts, the worst of theirs: fleet.py)."""

EXIT_OK, EXIT_NOT_IN_STATE, EXIT_USAGE = 0, 1, 2
