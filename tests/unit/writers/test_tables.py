"""The table registry matches SPEC §3.7/§3.8/§4.5/§4.8 and DECISIONS (schemas, keys, modes)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from core.settings import load_settings
from domains.names import Table
from writers.tables import TABLES, MergeMode, TableSpec, app_id, table_uri

TS = pa.timestamp("us", tz="UTC")


def test_registry__has_a_spec_for_every_table() -> None:
    assert set(TABLES) == set(Table)
    assert all(spec.name is table for table, spec in TABLES.items())


def test_xact_events__31_current_columns_in_spec_order() -> None:
    names = TABLES[Table.XACT_EVENTS].schema.names
    assert len(names) == 31
    assert names[:7] == [
        "type",
        "status_subtype",
        "version",
        "ingested_at",
        "event_date",
        "trace_id",
        "event_id",
    ]
    assert names[20:22] == ["attachments", "claim_number"]
    assert names[-3:] == ["raw_json", "created_at", "created_date"]


def test_xact_attachments__11_current_columns() -> None:
    schema = TABLES[Table.XACT_ATTACHMENTS].schema
    assert schema.names == [
        "media_id",
        "trace_id",
        "attachment_url",
        "blob_path",
        "file_type",
        "status_subtype",
        "assignment_id",
        "bytes_downloaded",
        "downloaded_at",
        "created_at",
        "event_date",
    ]
    assert schema.field("bytes_downloaded").type == pa.int64()
    assert schema.field("event_date").type == pa.date32()


def test_failed_table__has_spec_columns_plus_where_and_why() -> None:
    names = set(TABLES[Table.XACT_ATTACHMENTS_FAILED].schema.names)
    assert {
        "media_id",
        "trace_id",
        "attachment_url",
        "error_message",
        "status",
        "failed_at",
        "retry_count",
        "http_status",
        "created_at",
        "status_subtype",
        "assignment_id",
        "blob_path",
        "error_category",
    } == names


@pytest.mark.parametrize(
    ("table", "keys", "mode", "partition"),
    [
        (Table.XACT_EVENTS, ("trace_id",), MergeMode.INSERT_NEW, ("event_date",)),
        (Table.XACT_ATTACHMENTS, ("media_id",), MergeMode.INSERT_NEW, ("event_date",)),
        (Table.XACT_ATTACHMENTS_FAILED, ("media_id",), MergeMode.UPSERT, ()),
        (Table.CLAIMX_EVENTS, ("event_id",), MergeMode.INSERT_NEW, ("event_date",)),
        (Table.CLAIMX_PROJECTS, ("project_id",), MergeMode.UPSERT, ()),
        (Table.CLAIMX_CONTACTS, ("project_id", "contact_email", "contact_type"), MergeMode.UPSERT, ()),
        (Table.CLAIMX_ATTACHMENT_METADATA, ("media_id",), MergeMode.UPSERT, ()),
        (Table.CLAIMX_TASKS, ("assignment_id",), MergeMode.UPSERT, ()),
        (Table.CLAIMX_TASK_TEMPLATES, ("task_id",), MergeMode.UPSERT_IF_MODIFIED, ()),
        (Table.CLAIMX_EXTERNAL_LINKS, ("link_id",), MergeMode.UPSERT, ()),
        (Table.CLAIMX_VIDEO_COLLAB, ("video_collaboration_id",), MergeMode.UPSERT, ()),
        (Table.CLAIMX_ATTACHMENTS, ("media_id",), MergeMode.UPSERT, ()),
    ],
)
def test_table__key_mode_and_partition(
    table: Table, keys: tuple[str, ...], mode: MergeMode, partition: tuple[str, ...]
) -> None:
    spec = TABLES[table]
    assert (spec.keys, spec.mode, spec.partition_by) == (keys, mode, partition)


@pytest.mark.parametrize("table", list(Table))
def test_every_table__traces_event_id_and_uses_utc_microsecond_timestamps(table: Table) -> None:
    schema = TABLES[table].schema
    assert (
        "event_id" in schema.names
        or table is Table.XACT_ATTACHMENTS
        or table is Table.XACT_ATTACHMENTS_FAILED
    )
    assert "source_event_id" not in schema.names
    for field in schema:
        if pa.types.is_timestamp(field.type):
            assert field.type == TS, field.name
        assert field.nullable


def test_claimx_projects__legacy_superset_with_policyholder_times() -> None:
    schema = TABLES[Table.CLAIMX_PROJECTS].schema
    for name, dtype in [
        ("custom_business_name", pa.string()),
        ("year_built", pa.int64()),
        ("square_footage", pa.int64()),
        ("primary_phone_country_code", pa.int64()),
        ("street2", pa.string()),
        ("county", pa.string()),
        ("country", pa.string()),
        ("appointment_date", pa.string()),
        ("company_name", pa.string()),
        ("contents_task_sent", pa.bool_()),
        ("xa_autolink_fail_at", TS),
        ("policyholder_invited_at", TS),
        ("policyholder_joined_at", TS),
        ("last_enriched_at", TS),
    ]:
        assert schema.field(name).type == dtype, name


def test_attachment_metadata__coordinates_are_doubles() -> None:
    schema = TABLES[Table.CLAIMX_ATTACHMENT_METADATA].schema
    assert schema.field("latitude").type == pa.float64()
    assert schema.field("longitude").type == pa.float64()


def test_update_columns__exclude_keys_and_preserved_created_at() -> None:
    spec = TABLES[Table.CLAIMX_CONTACTS]
    assert not {"project_id", "contact_email", "contact_type", "created_at"} & set(spec.update_columns)
    assert "updated_at" in spec.update_columns


def test_table_spec__rejects_a_key_missing_from_the_schema() -> None:
    with pytest.raises(ValueError, match="not in schema"):
        TableSpec(Table.XACT_EVENTS, pa.schema([("a", pa.string())]), ("trace_id",), (), MergeMode.UPSERT)


def test_table_uri_and_app_id() -> None:
    settings = load_settings(tables_uri="az://lake/tables/")
    assert table_uri(settings, Table.CLAIMX_TASKS) == "az://lake/tables/claimx_tasks"
    assert app_id(Table.XACT_EVENTS) == "claims-pipeline:xact_events"
