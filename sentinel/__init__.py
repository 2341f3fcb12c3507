"""sentinel: a health-checking process supervisor with alerting."""

__version__ = "0.1.0"
