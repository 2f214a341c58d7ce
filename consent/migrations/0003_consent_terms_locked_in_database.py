"""Triggers that refuse, for every client of the database, a change to the terms of a consent
record once it has left draft, and any change to the uses of such a record.

The application refuses the same through ``ConsentRecord.save`` and the admin; these triggers
hold for raw SQL too. Status and review columns stay writable: the services move them through
the lifecycle. The column list is frozen here on purpose: a later migration that adds a term
column extends it in its own trigger migration.
"""

from django.db import migrations

from portal.dbtriggers import run_sql_by_vendor

TERMS = [
    "person_id",
    "consent_text_version",
    "intended_uses",
    "projects",
    "covers_images",
    "covers_video",
    "covers_audio",
    "territory",
    "starts_on",
    "expires_on",
    "capture_method",
    "signed_document",
    "likeness_face",
    "likeness_body",
    "likeness_voice",
    "permitted_alterations",
    "prohibited_uses",
    "allows_model_training",
    "compensation_reference",
    "consent_text_sha256",
    "consent_text_language",
    "representation",
    "representative_name",
    "is_minor",
    "guardian_name",
    "guardian_relationship",
    "biometric_notice_accepted",
    "retention_policy_accepted",
    "supersedes_id",
    "created_at",
]
_RECORD_MESSAGE = "consent record terms never change once submitted: make a new version"
_USE_MESSAGE = "the uses of a submitted consent record never change"
_PARENT_STATUS = "(SELECT status FROM consent_consentrecord WHERE id = {row}.consent_id)"

_POSTGRESQL_UP = f"""
CREATE OR REPLACE FUNCTION consent_record_terms_locked() RETURNS trigger AS $$
BEGIN
    IF OLD.status <> 'draft' AND
       ROW({", ".join(f"NEW.{c}" for c in TERMS)}) IS DISTINCT FROM
       ROW({", ".join(f"OLD.{c}" for c in TERMS)}) THEN
        RAISE EXCEPTION '{_RECORD_MESSAGE}' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER consent_record_terms_locked BEFORE UPDATE ON consent_consentrecord
    FOR EACH ROW EXECUTE FUNCTION consent_record_terms_locked();

CREATE OR REPLACE FUNCTION consent_use_locked() RETURNS trigger AS $$
BEGIN
    IF (TG_OP <> 'INSERT' AND {_PARENT_STATUS.format(row="OLD")} <> 'draft') OR
       (TG_OP <> 'DELETE' AND {_PARENT_STATUS.format(row="NEW")} <> 'draft') THEN
        RAISE EXCEPTION '{_USE_MESSAGE}' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER consent_use_locked BEFORE INSERT OR UPDATE OR DELETE ON consent_consentuse
    FOR EACH ROW EXECUTE FUNCTION consent_use_locked();
"""
_POSTGRESQL_DOWN = """
DROP TRIGGER IF EXISTS consent_record_terms_locked ON consent_consentrecord;
DROP FUNCTION IF EXISTS consent_record_terms_locked();
DROP TRIGGER IF EXISTS consent_use_locked ON consent_consentuse;
DROP FUNCTION IF EXISTS consent_use_locked();
"""
_SQLITE_UP = [
    f"""CREATE TRIGGER consent_record_terms_locked BEFORE UPDATE ON consent_consentrecord
    WHEN OLD.status <> 'draft' AND ({" OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in TERMS)})
    BEGIN SELECT RAISE(ABORT, '{_RECORD_MESSAGE}'); END""",
    *(
        f"""CREATE TRIGGER consent_use_locked_{operation.lower()}
        BEFORE {operation} ON consent_consentuse
        WHEN {_PARENT_STATUS.format(row=row)} <> 'draft'
        BEGIN SELECT RAISE(ABORT, '{_USE_MESSAGE}'); END"""
        for operation, row in (("INSERT", "NEW"), ("UPDATE", "OLD"), ("DELETE", "OLD"))
    ),
]
_SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS consent_record_terms_locked",
    *(f"DROP TRIGGER IF EXISTS consent_use_locked_{op}" for op in ("insert", "update", "delete")),
]


class Migration(migrations.Migration):
    dependencies = [("consent", "0002_consent_terms_versions_and_uses")]

    operations = [
        run_sql_by_vendor(
            {"postgresql": _POSTGRESQL_UP, "sqlite": _SQLITE_UP},
            {"postgresql": _POSTGRESQL_DOWN, "sqlite": _SQLITE_DOWN},
        )
    ]
