"""The bytes the audit chain hashes: fixed for good (every stored hash depends on them), and the
verifier's fast way of writing them gives the same bytes as the definition."""

from __future__ import annotations

import datetime
import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from audit.chain import canonical, canonical_values, chain_digest, content_of, keyed_hash

KEY = b"first-key-of-the-chain-0123456789abcdef"
EVENT = [
    datetime.datetime(2026, 3, 1, 9, 30, 0, 125000, tzinfo=datetime.UTC),
    7,
    "legal-1",
    "consent.approved",
    "consent.consentrecord",
    "42",
    'Zoë 张 "quoted"\n',
    9,
    {"status": "submitted", "uses": ["ads", "web"]},
    {"status": "approved", "n": 1.5, "ok": True, "none": None},
    {},
    "req-1",
    "0" * 64,
    "k1",
]


def test_an_event_hashes_to_what_its_chain_has_always_stored():
    assert canonical(content_of(EVENT)) == (
        b'{"action":"consent.approved","actor_id":7,"actor_label":"legal-1","after":{"n":1.5,'
        b'"none":null,"ok":true,"status":"approved"},"before":{"status":"submitted","uses":'
        b'["ads","web"]},"detail":{},"key_id":"k1","object_id":"42","object_repr":'
        b'"Zo\\u00eb \\u5f20 \\"quoted\\"\\n","object_type":"consent.consentrecord",'
        b'"occurred_at":"2026-03-01T09:30:00.125000+00:00","person_id":9,"previous_hash":"'
        + b"0" * 64
        + b'","request_id":"req-1"}'
    )
    expected = "596a9b38b47549d74f02d3c11c7453cce82741759c24af0408f06a8323551fda"
    assert keyed_hash(content_of(EVENT), keys={"k1": KEY}) == expected
    assert chain_digest({"k1": KEY})(EVENT) == expected
    as_read = [EVENT[0].isoformat(), *EVENT[1:]]  # the time as the verifier reads it
    assert chain_digest({"k1": KEY})(as_read) == expected
    assert expected == hmac.new(KEY, canonical(content_of(EVENT)), hashlib.sha256).hexdigest()


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
_id = st.none() | st.integers() | st.booleans() | st.text(max_size=3)
_text = st.text()


@given(
    occurred_at=st.datetimes(timezones=st.just(datetime.UTC)).map(datetime.datetime.isoformat)
    | st.datetimes(timezones=st.just(datetime.UTC)),
    ids=st.tuples(_id, _id),
    texts=st.tuples(*[_text] * 8),
    documents=st.tuples(_json, _json, _json),
)
def test_the_verifier_writes_the_bytes_the_definition_does(occurred_at, ids, texts, documents):
    values = [occurred_at, ids[0], *texts[:5], ids[1], *documents, *texts[5:]]
    assert canonical_values(values) == canonical(content_of(values))
