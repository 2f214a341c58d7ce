"""Triggers that keep, for every client of the database, a published consent text as it was.

``ConsentTemplateVersion.save``/``delete`` refuse the same; these hold for raw SQL too: once
``published_at`` is set a version never changes nor is deleted, and on PostgreSQL its ``sha256``
is checked against the text's bytes when it is published. The electronic signature's evidence
(``consent_consentsignature``) is never changed nor deleted; and a consent record's
``template_version_id`` (a term added after migration 0003) is frozen once the record left draft.
"""

from django.db import migrations

from portal.dbtriggers import run_sql_by_vendor

_FROZEN = "a published consent text never changes: write a new version"
_HASH = "the sha256 of a consent text must be the SHA-256 of its text"
_SIGNATURE = "the evidence of an electronic signature never changes"
_TERMS = "consent record terms never change once submitted: make a new version"
_RAISE = "USING ERRCODE = 'integrity_constraint_violation'"

_POSTGRESQL_UP = f"""
CREATE OR REPLACE FUNCTION consent_text_frozen() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.published_at IS NOT NULL THEN RAISE EXCEPTION '{_FROZEN}' {_RAISE}; END IF;
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.published_at IS NOT NULL THEN
        RAISE EXCEPTION '{_FROZEN}' {_RAISE};
    END IF;
    IF NEW.published_at IS NOT NULL AND
       NEW.sha256 <> encode(sha256(convert_to(NEW.text, 'UTF8')), 'hex') THEN
        RAISE EXCEPTION '{_HASH}' {_RAISE};
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER consent_text_frozen BEFORE INSERT OR UPDATE OR DELETE
    ON consent_consenttemplateversion FOR EACH ROW EXECUTE FUNCTION consent_text_frozen();

CREATE OR REPLACE FUNCTION consent_signature_kept() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '{_SIGNATURE}' {_RAISE};
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER consent_signature_kept BEFORE UPDATE OR DELETE
    ON consent_consentsignature FOR EACH ROW EXECUTE FUNCTION consent_signature_kept();

CREATE OR REPLACE FUNCTION consent_record_template_locked() RETURNS trigger AS $$
BEGIN
    IF OLD.status <> 'draft' AND
       NEW.template_version_id IS DISTINCT FROM OLD.template_version_id THEN
        RAISE EXCEPTION '{_TERMS}' {_RAISE};
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER consent_record_template_locked BEFORE UPDATE ON consent_consentrecord
    FOR EACH ROW EXECUTE FUNCTION consent_record_template_locked();
"""
_POSTGRESQL_DOWN = """
DROP TRIGGER IF EXISTS consent_text_frozen ON consent_consenttemplateversion;
DROP FUNCTION IF EXISTS consent_text_frozen();
DROP TRIGGER IF EXISTS consent_signature_kept ON consent_consentsignature;
DROP FUNCTION IF EXISTS consent_signature_kept();
DROP TRIGGER IF EXISTS consent_record_template_locked ON consent_consentrecord;
DROP FUNCTION IF EXISTS consent_record_template_locked();
"""
_SQLITE_TRIGGERS = {
    "consent_text_frozen_update": (
        "UPDATE ON consent_consenttemplateversion",
        "OLD.published_at IS NOT NULL",
        _FROZEN,
    ),
    "consent_text_frozen_delete": (
        "DELETE ON consent_consenttemplateversion",
        "OLD.published_at IS NOT NULL",
        _FROZEN,
    ),
    "consent_signature_kept_update": ("UPDATE ON consent_consentsignature", "1", _SIGNATURE),
    "consent_signature_kept_delete": ("DELETE ON consent_consentsignature", "1", _SIGNATURE),
    "consent_record_template_locked": (
        "UPDATE ON consent_consentrecord",
        "OLD.status <> 'draft' AND NEW.template_version_id IS NOT OLD.template_version_id",
        _TERMS,
    ),
}
_SQLITE_UP = [
    f"CREATE TRIGGER {name} BEFORE {event} WHEN {condition} "
    f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
    for name, (event, condition, message) in _SQLITE_TRIGGERS.items()
]
_SQLITE_DOWN = [f"DROP TRIGGER IF EXISTS {name}" for name in _SQLITE_TRIGGERS]


class Migration(migrations.Migration):
    dependencies = [("consent", "0015_consent_templates_and_esignature")]

    operations = [
        run_sql_by_vendor(
            {"postgresql": _POSTGRESQL_UP, "sqlite": _SQLITE_UP},
            {"postgresql": _POSTGRESQL_DOWN, "sqlite": _SQLITE_DOWN},
        )
    ]
