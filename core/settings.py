"""The one settings object, read from the environment and validated at start-up (STYLE §4).

Build it at an entry point with :func:`get_settings` and pass it down; nothing deeper reads
``os.environ``. Every field is documented in README.md (env var = field name upper-cased).
Secrets are ``SecretStr`` so they never print.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.errors import ConfigError
from core.security.urls import is_loopback_url

#: Allow-list used when ALLOWED_ATTACHMENT_DOMAINS is not set (SPEC §9.1, without ``localhost``).
DEFAULT_ALLOWED_HOSTS = (
    "usw2-prod-xn-exportreceiver-publish.s3.us-west-2.amazonaws.com",
    "claimxperience.s3.amazonaws.com",
    "claimxperience.s3.us-east-1.amazonaws.com",
    "www.claimxperience.com",
    "claimxperience.com",
    "xactware-claimx-us-prod.s3.us-west-1.amazonaws.com",
)

CommaList = Annotated[list[str], NoDecode]

#: ``{domain}_events_topic``, ``{domain}_eventhouse_table``, … ``onelake_{domain}_path``: the
#: per-domain names of keyed settings (field -> the keyed field they fill).
_PER_DOMAIN_FIELDS = {
    "events_topic": "events_topics",
    "dlq_topic": "dlq_topics",
    "eventhouse_cluster_url": "eventhouse_cluster_urls",
    "eventhouse_database": "eventhouse_databases",
    "eventhouse_table": "eventhouse_tables",
}
_PER_DOMAIN = re.compile(
    rf"(?:([a-z][a-z0-9_]*?)_({'|'.join(_PER_DOMAIN_FIELDS)})|onelake_([a-z][a-z0-9_]*?)_path)"
)


def _per_domain_field(match: re.Match[str]) -> tuple[str, str]:
    if match.group(3):
        return "onelake_paths", match.group(3)
    return _PER_DOMAIN_FIELDS[match.group(2)], match.group(1)


IntList = Annotated[list[int], NoDecode]


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip().lower() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", case_sensitive=False, use_attribute_docstrings=True
    )

    # --- Broker (Celery on Redis) and shared state -------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    """Celery broker and the pipeline's shared state (ledger, staging, dead letters, cache, locks).
    ``redis://:PASSWORD@host:6379/0`` for a password, ``rediss://…`` for TLS (README "Security")."""
    redis_tls_ca_file: Path | None = None
    """``rediss://`` only: CA bundle that signed the Redis server's certificate (default: the system's)."""
    redis_tls_cert_reqs: Literal["required", "none"] = "required"
    """``rediss://`` only: ``required`` checks the server certificate and host name; ``none`` does not."""
    visibility_timeout_seconds: int = 1200
    """Redis transport visibility timeout: when an unacknowledged message is redelivered. Must exceed
    ``TASK_TIME_LIMIT_SECONDS`` (a running task is never redelivered); retries wait in the durable
    schedule, not in the broker, so no retry delay counts. Default 20 min = the 15 min limit + 5 min.
    It is only the last net: the reaper restores a dead worker's messages within about 2 minutes."""
    task_time_limit_seconds: int = 900
    """Hard time limit of one task run; the soft limit is 30 s shorter."""
    task_events: bool = False
    """Workers send Celery task events (received/started/succeeded) from start. Off: Flower turns
    them on itself while it runs (``enable_events``), so they cost nothing when nobody watches
    (docs/benchmarks.md "End to end")."""
    task_sent_events: bool = False
    """Publishers also send a ``task-sent`` event per message (Flower's SENT state): one more
    Redis round trip per publish, chain hand-offs included; nothing can turn it on at run time."""
    retry_delays_seconds: IntList = Field(default_factory=lambda: [300, 600, 1200, 2400])
    """Retry countdowns for transient/auth/unknown failures; retries = len(list) (SPEC §6.3)."""
    retry_jitter: bool = True
    """Spread each retry countdown by +/-10 % so a burst of failures does not return as a burst."""
    retry_release_interval_seconds: float = Field(default=1.0, gt=0)
    """How often every worker releases due retries from the durable schedule onto their queues."""
    worker_heartbeat_seconds: float = Field(default=10.0, gt=0)
    """Each worker refreshes its heartbeat key this often; the key lives three times as long, so a
    worker counts as gone 30 s (by default) after its last heartbeat."""
    reaper_interval_seconds: float = Field(default=30.0, gt=0)
    """How often the reaper runs (from every worker, one at a time): re-drives the work of gone
    workers and messages lost by the broker."""
    reaper_unacked_grace_seconds: float = Field(default=60.0, ge=0)
    """An unacknowledged message no live worker runs is restored once it was delivered this long ago."""
    reaper_lost_after_seconds: float = Field(default=120.0, gt=0)
    """Work silent this long is looked for (running, unacknowledged, scheduled, queued); found
    nowhere at two passes in a row, it is re-driven (default: within 5 min of its loss)."""

    # --- Kafka / Event Hubs -----------------------------------------------------------------
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    """Kafka brokers (Event Hubs: ``<namespace>.servicebus.windows.net:9093``)."""
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """librdkafka ``security.protocol``."""
    kafka_sasl_mechanism: str | None = None
    """``PLAIN``, ``SCRAM-SHA-512``, … (with the username/password below)."""
    kafka_sasl_username: str | None = None
    """SASL user name."""
    kafka_sasl_password: SecretStr | None = None
    """SASL password (secret)."""
    eventhub_connection_string: SecretStr | None = None
    """When set: SASL_SSL + PLAIN with username ``$ConnectionString`` (Azure Event Hubs)."""
    kafka_consumer_group: str = "claims-dispatcher"
    """Consumer group of the dispatchers; run N dispatchers in one group to scale."""
    kafka_auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    """Where a new consumer group starts."""
    kafka_session_timeout_ms: int = 45_000
    """How long a silent dispatcher keeps its partitions before the group reassigns them."""
    events_topics: dict[str, str] = Field(default_factory=dict)
    """Raw events topic per domain (JSON object); unset: ``{domain}.events.raw``. ``{DOMAIN}_EVENTS_TOPIC``
    (e.g. ``XACT_EVENTS_TOPIC``) sets one domain's."""
    dlq_topics: dict[str, str] = Field(default_factory=dict)
    """Where a domain's records that cannot be parsed go (error in headers); unset: ``{domain}.events.dlq``.
    ``{DOMAIN}_DLQ_TOPIC`` sets one domain's."""
    dispatch_batch_size: int = 500
    """Records polled per dispatcher batch; offsets are committed after each batch is enqueued."""
    dispatch_linger_ms: int = Field(default=50, ge=0, le=5000)
    """Once a batch's first record is in hand, how long the dispatcher waits for more before it
    dispatches a partial batch (a backlog fills batches at once; a trickle waits at most this)."""
    dispatch_dedup_ttl_seconds: int = 24 * 3600
    """How long the dispatch ledger remembers an event id (a redelivery within it is skipped)."""
    dlq_delivery_timeout_seconds: float = 30.0
    """How long the dispatcher waits for the broker to acknowledge its dead-letter records; a record
    not acknowledged in time fails the batch, which is read again (its offsets are not committed)."""
    dispatch_durability: Literal["auto", "waitaof", "off"] = "auto"
    """When offsets are committed: ``auto`` after ``WAITAOF`` confirms the batch is fsynced (Redis >=
    7.2), or after Redis's reply with a start-up warning where the server cannot confirm; ``waitaof``
    refuses to start unless Redis can confirm (WAITAOF, or ``appendfsync always``); ``off`` never waits."""
    dispatch_waitaof_timeout_ms: int = 2000
    """Longest wait for ``WAITAOF``; a batch not confirmed in time is read again."""
    backpressure_enabled: bool = True
    """Pause a domain's partitions while its backlog in Redis is above the high-water marks."""
    backpressure_high_water: int = 10_000
    """Messages in any one stage queue of a domain (or unacknowledged tasks, scheduled retries or
    attachment chains in flight, which pause every domain) above which the dispatcher pauses that
    domain's intake. Default: about 30 MB of queued work, far below the stack's 2 GB ``maxmemory``."""
    backpressure_low_water: int = 5_000
    """Intake resumes once every such count is below this."""
    backpressure_staged_rows_high: int = 200_000
    """Staged rows of a domain's tables not yet flushed above which its intake pauses."""
    backpressure_staged_rows_low: int = 100_000
    """Staged rows below which intake resumes."""
    backpressure_memory_high_ratio: float = 0.6
    """Pause every domain when Redis ``used_memory`` is above this share of ``maxmemory`` (0: off)."""
    backpressure_memory_low_ratio: float = 0.5
    """Resume once ``used_memory`` is below this share of ``maxmemory``."""
    backpressure_check_interval_ms: int = 250
    """The backlog is measured (one pipelined round trip) at most this often, and sooner only when
    what was enqueued since could have crossed the high-water mark."""

    # --- Lake: files and tables -------------------------------------------------------------
    lake_dir: Path = Path("./lake")
    """Local lake root: files under ``files/{domain}/``, Delta tables under ``tables/``."""
    tables_uri: str | None = None
    """Delta tables root; a local path or ``abfss://…/Tables/dbo``. Default ``{lake_dir}/tables``."""
    file_store: Literal["local", "onelake"] = "local"
    """Where attachment files go: ``local`` (``{lake_dir}/files``) or ``onelake`` (ADLS Gen2)."""
    onelake_paths: dict[str, str] = Field(default_factory=dict)
    """Files root per domain for ``FILE_STORE=onelake`` (JSON object). ``ONELAKE_{DOMAIN}_PATH`` sets one:
    ``ONELAKE_XACT_PATH=abfss://<ws>@onelake.dfs.fabric.microsoft.com/<lakehouse>/Files/veriskPipeline/xact``."""
    azure_storage_connection_string: SecretStr | None = None
    """Only for Delta on Azurite / a storage account by connection string (tests, dev)."""
    cache_dir: Path = Path(".cache/downloads")
    """Download cache; a file waits here between ``download`` and ``upload``. Created private (0700);
    must not be a world-writable place such as ``/tmp`` itself."""
    shared_cache: bool = False
    """True when ``cache_dir`` is shared by all hosts: upload may then run on any host."""
    flush_interval_seconds: float = 5.0
    """Beat schedule of the batcher (``pipeline.flush``)."""
    sweep_interval_seconds: float = 300.0
    """Beat schedule of ``pipeline.sweep``, which restarts attachment chains lost by the broker."""
    beat_leader_ttl_seconds: float = Field(default=30.0, ge=3.0)
    """Beat leader lease (several Beats, one sends): renewed every third of it; a standby Beat takes
    over at most 4/3 of it after the leader died (default 40 s), at once after a clean stop."""
    flush_max_rows: int = 100_000
    """Most rows one table flush takes from staging (one Delta commit)."""
    compact_small_files: int = Field(default=32, ge=0)
    """After a flush, compact the table once it holds more than this many small files that compaction
    can merge (beyond one per partition); 0 = only the daily ``pipeline.maintain``. Runs under the table's
    flush lock, after the flush committed (docs/architecture.md "Table maintenance")."""
    small_file_bytes: int = Field(default=16 * 1024**2, ge=1)
    """A Delta data file below this size counts as small for ``COMPACT_SMALL_FILES``."""
    delta_log_retention_hours: float = Field(default=1.0, gt=0)
    """Delta log entries and tombstones older than this are dropped at each checkpoint (the tables'
    ``delta.logRetentionDuration`` and ``delta.deletedFileRetentionDuration``, set by the maintenance
    hook; checkpoints keep the flush versions; a removed file stays on disk until the daily vacuum
    finds it a week old).
    Every load of a table lists its log, so a long log slows every merge: at a commit every 5 s, 1 h
    keeps 720 entries, Delta's default of 30 days 518,400. Time travel reaches back this far."""
    onelake_upload_chunk_bytes: int = Field(default=8 * 1024**2, ge=256 * 1024, le=100 * 1024**2)
    """Bytes per ADLS Gen2 append of a OneLake upload (one request each)."""
    onelake_upload_concurrency: int = Field(default=8, ge=1, le=10)
    """Appends in flight per upload (at most 10: the SDK's connection pool size). Memory per upload is at
    most (this + 1) × ``ONELAKE_UPLOAD_CHUNK_BYTES``."""

    # --- Downloads --------------------------------------------------------------------------
    allowed_attachment_domains: CommaList = Field(default_factory=lambda: list(DEFAULT_ALLOWED_HOSTS))
    """Exact hosts or ``*.suffix`` entries."""
    max_download_bytes: int = 2 * 1024**3
    """Largest attachment accepted (default 2 GiB); larger is a permanent failure."""
    download_timeout_seconds: float = 60.0
    """Base time one download may take (headers and a small body); grows with the size (below)."""
    download_read_timeout_seconds: float = 30.0
    """Longest silence on a download socket."""
    download_min_bytes_per_second: float = Field(default=3_000_000, ge=0)
    """Slowest healthy link: a download of N bytes may take ``DOWNLOAD_TIMEOUT_SECONDS`` + N / this
    (N from Content-Length, else the bytes received so far), at most ``DOWNLOAD_MAX_SECONDS``; 0 = the
    fixed ``DOWNLOAD_TIMEOUT_SECONDS``. A stalled link still fails after ``DOWNLOAD_READ_TIMEOUT_SECONDS``."""
    download_max_seconds: float = Field(default=840.0, gt=0)
    """Ceiling of one download's time, also kept 40 s below ``TASK_TIME_LIMIT_SECONDS`` (the task's soft
    limit is 30 s below it). Default: 2 GiB at 3 MB/s fits."""
    max_redirects: int = 5
    """Redirect hops followed, each re-validated against the allow-list."""
    allowed_attachment_ports: IntList = Field(default_factory=lambda: [443])
    """Ports an attachment URL (or redirect) may name; anything else is refused."""

    # --- Development only (off by default) --------------------------------------------------
    dev_simulator_url: str | None = None
    """DEV ONLY. When set, downloads from ``dev_simulator_hosts`` are fetched from this base URL
    (``{base}/{host}/{path}``) after the production URL checks passed on the original URL.
    Must be a loopback URL (``http://127.0.0.1:PORT``); a process with it set logs a WARNING at start."""
    dev_simulator_hosts: CommaList = Field(default_factory=list)
    """DEV ONLY. Hosts served by ``dev_simulator_url`` (must also be on the allow-list)."""

    # --- ClaimX API -------------------------------------------------------------------------
    claimx_api_url: str = "https://www.claimxperience.com/service/cxedirest"
    """ClaimX REST base URL; https (plain http only to loopback while ``dev_simulator_url`` is set)."""
    claimx_api_proxy_url: str | None = None
    """Proxy for ClaimX calls. Proxy, ``.netrc`` and CA-bundle environment variables are ignored."""
    claimx_api_token: SecretStr | None = None
    """ClaimX Basic token (base64 ``user:password``), secret; required by enrich workers."""
    claimx_api_timeout_seconds: float = 30.0
    """ClaimX read timeout."""
    claimx_api_connect_timeout_seconds: float = 5.0
    """ClaimX connect timeout."""
    claimx_api_rate_per_second: float = 20.0
    """Request-rate limit shared by all workers on all hosts (a token bucket in Redis)."""
    claimx_sender_username: str = "user@example.com"
    """``senderUsername`` of ClaimX report requests (``POST /data``)."""
    project_cache_ttl_seconds: int = 3600
    """A project fetched within this time is not fetched again (media/task/video/policyholder)."""
    project_cache_enabled: bool = True
    """Off = re-fetch the project on every event (CURRENT behaviour)."""
    url_refresh_max: int = 2
    """Refreshes of an expired/refused ClaimX media link per download task."""

    # --- Eventhouse poller ------------------------------------------------------------------
    eventhouse_cluster_urls: dict[str, str] = Field(default_factory=dict)
    """Eventhouse per domain (JSON object); ``{DOMAIN}_EVENTHOUSE_CLUSTER_URL`` sets one:
    ``XACT_EVENTHOUSE_CLUSTER_URL=https://<cluster>.kusto.fabric.microsoft.com``."""
    eventhouse_databases: dict[str, str] = Field(default_factory=dict)
    """KQL database per domain; ``{DOMAIN}_EVENTHOUSE_DATABASE`` sets one (deployment: xact
    ``VERISK_XACTANALYSIS_DB``, claimx ``VERISK_CLAIMXPERIENCE_DB``)."""
    eventhouse_tables: dict[str, str] = Field(default_factory=dict)
    """Source table per domain; ``{DOMAIN}_EVENTHOUSE_TABLE`` sets one. Unset: the domain's default
    (xact ``Events``, claimx ``ClaimXEvents``; deployment: ``tbl_VERISK_XACTANALYSIS_STATUS_EXPORT``,
    ``tbl_CLAIMXPERIENCE_EVENTS``)."""
    poll_interval_seconds: float = 30.0
    """Pause between poller cycles when the last page was not full."""
    poll_batch_size: int = 1000
    """Rows per poller page (KQL ``take``)."""
    checkpoint_dir: Path = Path(".checkpoints")
    """Where the poller keeps ``poller_{domain}.json``."""
    eventhouse_query_timeout_seconds: float = 120.0
    """Server-side timeout of one poller query (SPEC §2.1: xact 240 s in deployment, claimx 120 s)."""
    eventhouse_lookback_seconds: float = 3600.0
    """Where polling starts when there is no checkpoint yet: now minus this."""
    eventhouse_settle_seconds: float = 0.0
    """Poll only rows ingested before now minus this (SPEC: 0), so batches still committing are not overtaken."""
    eventhouse_max_retries: int = 3
    """Retries of a failed (transient/auth/unknown) poller query within one cycle."""
    eventhouse_retry_base_delay_seconds: float = 1.0
    """First retry delay; doubles per retry, with jitter (a 429's Retry-After is honoured)."""
    eventhouse_retry_max_delay_seconds: float = 30.0
    """Cap of one retry delay."""
    eventhouse_token_file: Path | None = None
    """Bearer token for the Kusto resource, re-read on every query: a raw token, or SPEC §8.2 JSON keyed
    by resource URL. Unset: the default Azure credential chain (service principal, managed identity, CLI)."""
    eventhouse_bulk_backfill: bool = False
    """``pipeline poll`` pages through [start, stop) until a short page, then exits (docs/poller.md)."""
    eventhouse_backfill_start: datetime | None = None
    """Backfill start (ISO-8601, naive = UTC); set: its own checkpoint file. Unset: the live checkpoint."""
    eventhouse_backfill_stop: datetime | None = None
    """Backfill stop, exclusive (default: now when the backfill starts)."""

    # --- Runtime ----------------------------------------------------------------------------
    domain_plugins: CommaList = Field(default_factory=list)
    """Modules of plug-in domains (``package.module,…``, each with ``spec()``), beside xact and claimx;
    set the same list for the dispatcher, every worker and Beat (docs/architecture.md "Adding a domain")."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log level of the ``pipeline`` commands."""
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per log line (``event_id``, ``domain``, ``stage``, ``task_id``, ``attempt``, …), every field redacted."""

    # --- Monitoring (Prometheus metrics, health) ---------------------------------------------
    metrics_bind_address: str = "127.0.0.1"
    """Address the metrics/health endpoints bind to (``0.0.0.0`` in containers that Prometheus scrapes)."""
    dispatcher_metrics_port: int = Field(default=9481, ge=0, le=65535)
    """Dispatcher's ``/metrics``, ``/healthz``, ``/readyz``; 0 = off."""
    worker_metrics_port: int = Field(default=9482, ge=0, le=65535)
    """A Celery worker's endpoints (all pool processes aggregated); give each worker on one host its own; 0 = off."""
    beat_metrics_port: int = Field(default=9483, ge=0, le=65535)
    """Beat's endpoints; Beat also exports the queue, dead-letter, staging and flush-age gauges; 0 = off."""
    poller_metrics_port: int = Field(default=9484, ge=0, le=65535)
    """The Eventhouse poller's endpoints; 0 = off."""

    _split_lists = field_validator("allowed_attachment_domains", "dev_simulator_hosts", mode="before")(_split)

    @field_validator("allowed_attachment_ports", mode="before")
    @classmethod
    def _parse_ports(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("dev_simulator_url")
    @classmethod
    def _dev_url_is_loopback(cls, value: str | None) -> str | None:
        if value and not is_loopback_url(value):
            raise ValueError(
                "DEV_SIMULATOR_URL must be a loopback URL (http://127.0.0.1:PORT); it is development only"
            )
        return value or None

    @field_validator("domain_plugins", mode="before")
    @classmethod
    def _split_plugins(cls, value: object) -> object:
        if isinstance(value, str):  # module paths keep their case
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="before")
    @classmethod
    def _per_domain_names(cls, data: object) -> object:
        """Fold ``{DOMAIN}_EVENTS_TOPIC``, ``{DOMAIN}_DLQ_TOPIC``, ``{DOMAIN}_EVENTHOUSE_*`` and
        ``ONELAKE_{DOMAIN}_PATH`` (from the environment or as keyword arguments) into the keyed
        settings; explicit keys win."""
        if not isinstance(data, dict):
            return data
        found: dict[str, dict[str, str]] = {}
        for source in (os.environ, data):
            for name, value in source.items():
                match = _PER_DOMAIN.fullmatch(str(name).lower())
                if match and isinstance(value, str) and value:
                    field_name, domain = _per_domain_field(match)
                    found.setdefault(field_name, {})[domain] = value
        for field_name, values in found.items():
            explicit = data.get(field_name)
            if isinstance(explicit, str):
                explicit = json.loads(explicit) if explicit.strip() else {}
            data[field_name] = {**values, **(explicit or {})}
        return data

    @field_validator("retry_delays_seconds", mode="before")
    @classmethod
    def _parse_delays(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(part) for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if not (
            0 <= self.backpressure_low_water < self.backpressure_high_water
            and 0 <= self.backpressure_staged_rows_low < self.backpressure_staged_rows_high
            and 0 <= self.backpressure_memory_low_ratio <= self.backpressure_memory_high_ratio <= 1
        ):
            raise ValueError("BACKPRESSURE_*: each low-water mark must be below its high-water mark")
        # Retries wait in the durable schedule (tasks.schedule), never in the broker: an
        # unacknowledged message is only ever a running (or just received) task.
        if self.visibility_timeout_seconds <= self.task_time_limit_seconds:
            raise ValueError(
                f"VISIBILITY_TIMEOUT_SECONDS={self.visibility_timeout_seconds} must exceed "
                f"TASK_TIME_LIMIT_SECONDS ({self.task_time_limit_seconds} s); otherwise Redis redelivers "
                "running tasks and they run twice"
            )
        if self.file_store == "onelake" and not self.onelake_paths:
            raise ValueError(
                "FILE_STORE=onelake needs ONELAKE_{DOMAIN}_PATH for every domain "
                "(ONELAKE_XACT_PATH, ONELAKE_CLAIMX_PATH, …)"
            )
        if self.task_time_limit_seconds <= 30:
            raise ValueError("TASK_TIME_LIMIT_SECONDS must be more than 30")
        if not all(0 < port < 65536 for port in self.allowed_attachment_ports):
            raise ValueError("ALLOWED_ATTACHMENT_PORTS must be ports between 1 and 65535")
        api = urlsplit(self.claimx_api_url)
        if api.scheme != "https" and not (
            self.dev_simulator_url and api.scheme == "http" and is_loopback_url(self.claimx_api_url)
        ):
            raise ValueError(
                "CLAIMX_API_URL must be https (plain http is allowed only to a loopback simulator in development)"
            )
        return self

    # --- Derived values ---------------------------------------------------------------------
    @property
    def tables_root(self) -> str:
        return self.tables_uri or str((self.lake_dir / "tables").resolve())

    @property
    def orphan_after_seconds(self) -> float:
        """An attachment chain silent for longer than this was lost: redelivery, every retry and
        every stage's time limit would have moved it on before."""
        per_stage = sum(self.retry_delays_seconds) + self.task_time_limit_seconds
        return float(self.visibility_timeout_seconds + 3 * per_stage)

    @property
    def files_root(self) -> Path:
        return (self.lake_dir / "files").resolve()

    def topic_for(self, domain: str) -> str:
        """The raw events topic of ``domain`` (any registered domain, built-in or plug-in)."""
        return self.events_topics.get(str(domain)) or f"{domain}.events.raw"

    def dlq_topic_for(self, domain: str) -> str:
        return self.dlq_topics.get(str(domain)) or f"{domain}.events.dlq"

    def onelake_path_for(self, domain: str) -> str | None:
        return self.onelake_paths.get(str(domain))

    def kafka_config(self) -> dict[str, str]:
        """librdkafka client settings shared by producer and consumer (secrets stay inside)."""
        conf: dict[str, str] = {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.eventhub_connection_string is not None:
            conf.update(
                {
                    "security.protocol": "SASL_SSL",
                    "sasl.mechanism": "PLAIN",
                    "sasl.username": "$ConnectionString",
                    "sasl.password": self.eventhub_connection_string.get_secret_value(),
                }
            )
        elif self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
            if self.kafka_sasl_username:
                conf["sasl.username"] = self.kafka_sasl_username
            if self.kafka_sasl_password is not None:
                conf["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        return conf


def load_settings(**overrides: object) -> Settings:
    """Read and validate; raise :class:`ConfigError` with a readable message on bad input."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]  # pydantic validates the overrides at run time
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise ConfigError(f"invalid pipeline settings: {exc}") from exc


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, built once at the entry point (which logs the DEV warning)."""
    settings = load_settings()
    warn_if_development(settings)
    return settings


def warn_if_development(settings: Settings) -> None:
    """Say loudly (WARNING) that development routing is on: downloads and the ClaimX API may go
    to a local simulator instead of the real hosts. Never silent in a production process."""
    if settings.dev_simulator_url:
        logging.getLogger("pipeline.settings").warning(
            "DEVELOPMENT ROUTING IS ON: DEV_SIMULATOR_URL=%s serves %s; never set it in production",
            settings.dev_simulator_url,
            ",".join(settings.dev_simulator_hosts) or "(no hosts)",
        )
