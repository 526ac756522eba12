"""The one settings object, read from the environment and validated at start-up (STYLE §4).

Build it at an entry point with :func:`get_settings` and pass it down; nothing deeper reads
``os.environ``. Every field is documented in README.md (env var = field name upper-cased).
Secrets are ``SecretStr`` so they never print.
"""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.errors import ConfigError

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
    """Celery broker and the pipeline's shared state (ledger, staging, dead letters, cache, locks)."""
    visibility_timeout_seconds: int = 4 * 3600
    """Redis transport visibility timeout; must exceed the longest retry delay + task time limit."""
    task_time_limit_seconds: int = 900
    """Hard time limit of one task run; the soft limit is 30 s shorter."""
    retry_delays_seconds: IntList = Field(default_factory=lambda: [300, 600, 1200, 2400])
    """Retry countdowns for transient/auth/unknown failures; retries = len(list) (SPEC §6.3)."""
    retry_jitter: bool = True
    """Spread each retry countdown by +/-10 % so a burst of failures does not return as a burst."""

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
    xact_events_topic: str = "xact.events.raw"
    """Raw xact events topic."""
    claimx_events_topic: str = "claimx.events.raw"
    """Raw claimx events topic."""
    xact_dlq_topic: str = "xact.events.dlq"
    """Where xact records that cannot be parsed go (error in headers)."""
    claimx_dlq_topic: str = "claimx.events.dlq"
    """Where claimx records that cannot be parsed go (error in headers)."""
    dispatch_batch_size: int = 500
    """Records polled per dispatcher batch; offsets are committed after each batch is enqueued."""
    dispatch_dedup_ttl_seconds: int = 24 * 3600
    """How long the dispatch ledger remembers an event id (a redelivery within it is skipped)."""

    # --- Lake: files and tables -------------------------------------------------------------
    lake_dir: Path = Path("./lake")
    """Local lake root: files under ``files/{domain}/``, Delta tables under ``tables/``."""
    tables_uri: str | None = None
    """Delta tables root; a local path or ``abfss://…/Tables/dbo``. Default ``{lake_dir}/tables``."""
    file_store: Literal["local", "onelake"] = "local"
    """Where attachment files go: ``local`` (``{lake_dir}/files``) or ``onelake`` (ADLS Gen2)."""
    onelake_xact_path: str | None = None
    """``abfss://<ws>@onelake.dfs.fabric.microsoft.com/<lakehouse>/Files/veriskPipeline/xact``."""
    onelake_claimx_path: str | None = None
    """The claimx files root, same form, ending in ``/claimx``."""
    azure_storage_connection_string: SecretStr | None = None
    """Only for Delta on Azurite / a storage account by connection string (tests, dev)."""
    cache_dir: Path = Path("/tmp/claims_pipeline_cache")
    """Download cache; a file waits here between ``download`` and ``upload``."""
    shared_cache: bool = False
    """True when ``cache_dir`` is shared by all hosts: upload may then run on any host."""
    flush_interval_seconds: float = 5.0
    """Beat schedule of the batcher (``pipeline.flush``)."""
    sweep_interval_seconds: float = 300.0
    """Beat schedule of ``pipeline.sweep``, which restarts attachment chains lost by the broker."""
    flush_max_rows: int = 100_000
    """Most rows one table flush takes from staging (one Delta commit)."""

    # --- Downloads --------------------------------------------------------------------------
    allowed_attachment_domains: CommaList = Field(default_factory=lambda: list(DEFAULT_ALLOWED_HOSTS))
    """Exact hosts or ``*.suffix`` entries."""
    max_download_bytes: int = 2 * 1024**3
    """Largest attachment accepted (default 2 GiB); larger is a permanent failure."""
    download_timeout_seconds: float = 60.0
    """Total time one download may take."""
    download_read_timeout_seconds: float = 30.0
    """Longest silence on a download socket."""
    max_redirects: int = 5
    """Redirect hops followed, each re-validated against the allow-list."""

    # --- Development only (off by default) --------------------------------------------------
    dev_simulator_url: str | None = None
    """DEV ONLY. When set, downloads from ``dev_simulator_hosts`` are fetched from this base URL
    (``{base}/{host}/{path}``) after the production URL checks passed on the original URL."""
    dev_simulator_hosts: CommaList = Field(default_factory=list)
    """DEV ONLY. Hosts served by ``dev_simulator_url`` (must also be on the allow-list)."""

    # --- ClaimX API -------------------------------------------------------------------------
    claimx_api_url: str = "https://www.claimxperience.com/service/cxedirest"
    """ClaimX REST base URL."""
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
    xact_eventhouse_cluster_url: str | None = None
    """``https://<cluster>.kusto.fabric.microsoft.com`` of the xact Eventhouse."""
    xact_eventhouse_database: str | None = None
    """xact KQL database (deployment: ``VERISK_XACTANALYSIS_DB``)."""
    xact_eventhouse_table: str = "Events"
    """xact source table (deployment: ``tbl_VERISK_XACTANALYSIS_STATUS_EXPORT``)."""
    claimx_eventhouse_cluster_url: str | None = None
    """Cluster URL of the claimx Eventhouse."""
    claimx_eventhouse_database: str | None = None
    """claimx KQL database (deployment: ``VERISK_CLAIMXPERIENCE_DB``)."""
    claimx_eventhouse_table: str = "ClaimXEvents"
    """claimx source table (deployment: ``tbl_CLAIMXPERIENCE_EVENTS``)."""
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
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log level of the ``pipeline`` commands."""

    _split_lists = field_validator("allowed_attachment_domains", "dev_simulator_hosts", mode="before")(_split)

    @field_validator("retry_delays_seconds", mode="before")
    @classmethod
    def _parse_delays(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(part) for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        longest = max([int(d) for d in self.retry_delays_seconds] or [0])
        if self.visibility_timeout_seconds <= longest + self.task_time_limit_seconds:
            raise ValueError(
                f"VISIBILITY_TIMEOUT_SECONDS={self.visibility_timeout_seconds} must exceed the longest "
                f"retry delay ({longest} s) plus TASK_TIME_LIMIT_SECONDS ({self.task_time_limit_seconds} s); "
                "otherwise Redis redelivers delayed tasks and they run twice"
            )
        if self.file_store == "onelake" and not (self.onelake_xact_path and self.onelake_claimx_path):
            raise ValueError("FILE_STORE=onelake needs ONELAKE_XACT_PATH and ONELAKE_CLAIMX_PATH")
        if self.task_time_limit_seconds <= 30:
            raise ValueError("TASK_TIME_LIMIT_SECONDS must be more than 30")
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
        return self.xact_events_topic if domain == "xact" else self.claimx_events_topic

    def dlq_topic_for(self, domain: str) -> str:
        return self.xact_dlq_topic if domain == "xact" else self.claimx_dlq_topic

    def domain_of_topic(self, topic: str) -> str:
        return "xact" if topic == self.xact_events_topic else "claimx"

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
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise ConfigError(f"invalid pipeline settings: {exc}") from exc


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, built once at the entry point."""
    return load_settings()
