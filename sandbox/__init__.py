"""A stand-in for Anyfast's ``/volc/asset/*`` upstream, mounted at ``/sandbox/``.

The README's "The sandbox" section describes keys, face identities, the phone page, latency and
fault settings, rate limits and the call counters (``sandbox.counters``).
"""
