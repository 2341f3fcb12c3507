"""Probes: one check each (http, tcp, exec), run with a timeout, returning a `ProbeResult`.

A failed probe is a result, not an exception: exceptions are for bugs.
"""

from __future__ import annotations

from sentinel.states import ProbeResult

__all__ = ["ProbeResult"]
