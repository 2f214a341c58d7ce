"""A stand-in for Anyfast's ``/volc/asset/*`` upstream, mounted at ``/sandbox/``.

See ``sandbox/README.md``: keys, face identities, the phone page, latency and fault settings,
rate limits and the call counters (``sandbox.counters``).
"""
