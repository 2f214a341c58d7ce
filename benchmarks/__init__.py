"""Performance benchmarks: run them all with ``bin/bench`` (``python -m benchmarks``).

Each module measures one thing and returns ``Result`` rows (``benchmarks.results``); ``__main__``
prepares a throwaway environment (a fresh PostgreSQL database, a temporary ``PORTAL_VAR_DIR``),
runs them, prints one table and exits non-zero when a target is missed. Everything talks to
127.0.0.1 only.
"""
