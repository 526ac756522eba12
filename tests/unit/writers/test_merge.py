"""The merge statement each mode produces (writers.merge)."""

from __future__ import annotations

from domains.names import Table
from writers.merge import key_predicate, update_condition, update_expressions
from writers.tables import TABLES


def test_key_predicate__single_key_is_plain_equality() -> None:
    assert key_predicate(TABLES[Table.XACT_EVENTS]) == '(t."trace_id" = s."trace_id")'


def test_key_predicate__composite_key_is_null_safe() -> None:
    predicate = key_predicate(TABLES[Table.CLAIMX_CONTACTS])
    assert predicate.count("IS NOT DISTINCT FROM") == 3
    assert predicate == (
        '(t."project_id" IS NOT DISTINCT FROM s."project_id") AND '
        '(t."contact_email" IS NOT DISTINCT FROM s."contact_email") AND '
        '(t."contact_type" IS NOT DISTINCT FROM s."contact_type")'
    )


def test_update_expressions__never_overwrite_with_null_and_preserve_created_at() -> None:
    updates = update_expressions(TABLES[Table.CLAIMX_PROJECTS])
    assert updates["status"] == 'coalesce(s."status", t."status")'
    assert updates["updated_at"] == 'coalesce(s."updated_at", t."updated_at")'
    assert updates["created_at"] == 'coalesce(t."created_at", s."created_at")'
    assert "project_id" not in updates


def test_update_condition__only_templates_compare_modified_date() -> None:
    assert update_condition(TABLES[Table.CLAIMX_TASKS]) is None
    condition = update_condition(TABLES[Table.CLAIMX_TASK_TEMPLATES])
    assert condition == '(s."modified_date" <> t."modified_date") OR (t."modified_date" IS NULL)'


def test_update_expressions__column_missing_from_an_older_target_takes_the_source_value() -> None:
    updates = update_expressions(TABLES[Table.CLAIMX_ATTACHMENTS], frozenset({"media_id", "project_id"}))
    assert updates["project_id"] == 'coalesce(s."project_id", t."project_id")'
    assert updates["content_type"] == 's."content_type"'
    assert updates["created_at"] == 's."created_at"'
