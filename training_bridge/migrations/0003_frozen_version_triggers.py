"""PostgreSQL triggers that hold a frozen dataset version read-only in the database itself.

- No record of a frozen version may be inserted, updated or deleted.
- A frozen version row may not be changed in any column, nor deleted.

The services already refuse such changes; the triggers make it a database fact, so not even a
raw SQL session or a cascading delete can alter what a trainer was given. Errors use SQLSTATE
23001 (restrict_violation), which Django raises as IntegrityError.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION training_bridge_record_frozen_guard() RETURNS trigger AS $$
DECLARE
    frozen_id bigint;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        SELECT id INTO frozen_id FROM training_bridge_datasetversion
            WHERE id = OLD.version_id AND status = 'frozen';
    END IF;
    IF frozen_id IS NULL AND TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT id INTO frozen_id FROM training_bridge_datasetversion
            WHERE id = NEW.version_id AND status = 'frozen';
    END IF;
    IF frozen_id IS NOT NULL THEN
        RAISE EXCEPTION 'dataset version % is frozen: its records are read-only', frozen_id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS training_bridge_record_frozen_guard ON training_bridge_datasetrecord;
CREATE TRIGGER training_bridge_record_frozen_guard
    BEFORE INSERT OR UPDATE OR DELETE ON training_bridge_datasetrecord
    FOR EACH ROW EXECUTE FUNCTION training_bridge_record_frozen_guard();

CREATE OR REPLACE FUNCTION training_bridge_version_frozen_guard() RETURNS trigger AS $$
BEGIN
    IF OLD.status = 'frozen' THEN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'dataset version % is frozen: it cannot be deleted', OLD.id
                USING ERRCODE = 'restrict_violation';
        END IF;
        IF NEW IS DISTINCT FROM OLD THEN
            RAISE EXCEPTION 'dataset version % is frozen: it cannot be changed', OLD.id
                USING ERRCODE = 'restrict_violation';
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS training_bridge_version_frozen_guard ON training_bridge_datasetversion;
CREATE TRIGGER training_bridge_version_frozen_guard
    BEFORE UPDATE OR DELETE ON training_bridge_datasetversion
    FOR EACH ROW EXECUTE FUNCTION training_bridge_version_frozen_guard();
"""

DROP = """
DROP TRIGGER IF EXISTS training_bridge_record_frozen_guard ON training_bridge_datasetrecord;
DROP FUNCTION IF EXISTS training_bridge_record_frozen_guard();
DROP TRIGGER IF EXISTS training_bridge_version_frozen_guard ON training_bridge_datasetversion;
DROP FUNCTION IF EXISTS training_bridge_version_frozen_guard();
"""


def _run(sql: str):
    # One execute of the whole script (no parameters, so the functions' % signs stay literal).
    def run(apps, schema_editor):
        schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("training_bridge", "0002_dataset_snapshots")]

    operations = [migrations.RunPython(_run(CREATE), _run(DROP))]
