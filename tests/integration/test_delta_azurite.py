"""Delta tables on Azure blob storage (Azurite): stage, flush exactly once, read back with polars."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest
import redis
from deltalake import DeltaTable

from core.settings import Settings, load_settings
from domains.names import Table
from writers.flush import flush_table, read_table
from writers.staging import Stager, batch_key, batch_version_key
from writers.tables import app_id, storage_options, table_uri

pytestmark = pytest.mark.integration

AZURITE_PORT = 10000
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONNECTION_STRING = (
    f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
    f"BlobEndpoint=http://127.0.0.1:{AZURITE_PORT}/devstoreaccount1;"
)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def container() -> Iterator[str]:
    if not _port_open(AZURITE_PORT):
        pytest.skip(
            f"Azurite blob endpoint is not listening on 127.0.0.1:{AZURITE_PORT} "
            "(start it with scripts/stack.sh start)"
        )
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(CONNECTION_STRING)
    name = f"delta-test-{uuid.uuid4().hex[:12]}"
    service.create_container(name)
    yield name
    service.delete_container(name)


@pytest.mark.parametrize(
    "connection_string",
    [CONNECTION_STRING, "UseDevelopmentStorage=true"],
    ids=["account-key-endpoint", "development-storage"],
)
def test_delta_on_azurite__flush_exactly_once_and_read_back(
    container: str, redis_client: redis.Redis, prefix: str, connection_string: str
) -> None:
    settings: Settings = load_settings(
        tables_uri=f"az://{container}/tables/{uuid.uuid4().hex[:8]}",
        azure_storage_connection_string=connection_string,
    )
    stager = Stager(redis_client, prefix)
    stager.stage(
        Table.XACT_EVENTS,
        [
            {
                "trace_id": f"3f9b2c1e-7a44-4c1d-9e2b-0a1b2c3d4e0{i}",
                "type": "verisk.claims.property.xn.documentsReceived",
                "status_subtype": "documentsReceived",
                "ingested_at": f"2026-01-0{i}T14:02:11.120Z",
                "assignment_id": f"A-710045{i}",
            }
            for i in range(1, 4)
        ],
    )

    first = flush_table(settings, redis_client, Table.XACT_EVENTS, prefix=prefix)
    assert (first.rows_written, first.version) == (3, 1)

    uri = table_uri(settings, Table.XACT_EVENTS)
    assert uri.startswith(f"az://{container}/tables/")
    table = DeltaTable(uri, storage_options=storage_options(settings))
    assert table.transaction_version(app_id(Table.XACT_EVENTS)) == 1
    assert table.metadata().partition_columns == ["event_date"]

    # A crash after the commit leaves the batch behind; the next flush must not write it again.
    redis_client.rpush(batch_key(prefix, Table.XACT_EVENTS), '{"trace_id":"would-be-duplicate"}')
    redis_client.set(batch_version_key(prefix, Table.XACT_EVENTS), 1)
    assert flush_table(settings, redis_client, Table.XACT_EVENTS, prefix=prefix).skipped_committed

    frame = read_table(settings, Table.XACT_EVENTS).sort("trace_id")
    assert frame.height == 3
    assert frame["assignment_id"].to_list() == ["A-7100451", "A-7100452", "A-7100453"]
    assert [d.isoformat() for d in frame["event_date"].to_list()] == [
        "2026-01-01",
        "2026-01-02",
        "2026-01-03",
    ]

    # A key the table holds is found by the key lookup (parquet read from the container) and
    # skipped; only the new key is appended.
    stager.stage(
        Table.XACT_EVENTS,
        [
            {"trace_id": "3f9b2c1e-7a44-4c1d-9e2b-0a1b2c3d4e01", "ingested_at": "2026-01-09T00:00:00Z"},
            {"trace_id": "3f9b2c1e-7a44-4c1d-9e2b-0a1b2c3d4e09", "ingested_at": "2026-01-09T00:00:00Z"},
        ],
    )
    again = flush_table(settings, redis_client, Table.XACT_EVENTS, prefix=prefix)
    assert (again.rows_in, again.rows_written) == (2, 1)
    assert read_table(settings, Table.XACT_EVENTS)["trace_id"].n_unique() == 4
