"""Settings for every process: one frozen model per external system, read from ``REVSTREAM_*``.

Only this module reads the environment. Variables are flat, prefixed and split once after the
system name: ``REVSTREAM_KAFKA_BOOTSTRAP_SERVERS``, ``REVSTREAM_REGISTRY_URL``,
``REVSTREAM_DATABASE_URL`` (plain ``DATABASE_URL`` is honoured too). An optional ``.env`` file in
the working directory is read as well. The same object builds the confluent-kafka, aiokafka/Faust
and psycopg configurations, so pointing revstream at a real cluster needs no code change.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from schemas.names import EVENT_TYPES
from streams.errors import SettingsError, StackError
from streams.secrets import redact_conninfo, redact_url

__all__ = [
    "ENV_PREFIX",
    "DatabaseSettings",
    "GatewaySettings",
    "GatewayToken",
    "KafkaSettings",
    "LagSettings",
    "RegistrySettings",
    "Settings",
    "TopicsSettings",
    "WorkerSettings",
    "load_settings",
    "redact_url",
]

logger = logging.getLogger(__name__)

ENV_PREFIX = "REVSTREAM_"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
Profile = Literal["embedded", "external"]

# The embedded broker (Tansu) holds a consumer-group join for about half the session timeout, so
# the 45 s default makes every join take ~23 s; 6 s joins in ~3 s. This is the one place that
# deviation is handled: the embedded profile fills it in unless the user set a value.
EMBEDDED_SESSION_TIMEOUT_MS = 6000
EMBEDDED_HEARTBEAT_INTERVAL_MS = 1000
# Its idempotent produce path is slow too: 4-5x a record's cost in the producer, and at a paced
# load of 2,700 events/s the broker's own CPU went from ~45 % to ~85 % of a core with the producers
# idempotent, starving the worker on a 2-core machine. The embedded profile turns idempotence off
# (unless set); one request in flight per connection keeps the order, and a retry's duplicate
# carries the same id (event_id for events, removed by dedupe; deterministic ids for outputs).
EMBEDDED_IDEMPOTENCE = False
# It also answers a fetch only when its wait expires, even when records arrived meanwhile: every
# consumer on the hot path (workers, reference-data reader, sink) waits 50 ms there instead of
# librdkafka's 500 ms or Faust's 1,500 ms, which sets the floor of the end-to-end latency.
EMBEDDED_FETCH_MAX_WAIT_MS = 50


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Frozen):
    """How to reach the Kafka cluster; exported to librdkafka and aiokafka dialects."""

    bootstrap_servers: str | None = Field(default=None, description="host:port[,host:port...]")
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None
    ssl_certificate_location: Path | None = None
    ssl_key_location: Path | None = None
    ssl_key_password: SecretStr | None = None
    session_timeout_ms: int | None = Field(default=None, ge=1000, le=3_600_000)
    heartbeat_interval_ms: int | None = Field(default=None, ge=100, le=3_600_000)
    idempotence: bool | None = None
    """Idempotent producers (``enable.idempotence``); unset: on, except on the embedded profile."""
    client_id: str = "revstream"

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL_"):
            if self.sasl_mechanism is None:
                raise ValueError("SASL_MECHANISM must be set when SECURITY_PROTOCOL is SASL_*")
            if not self.sasl_username or self.sasl_password is None:
                raise ValueError("SASL_USERNAME and SASL_PASSWORD must be set for SASL")
        for path in (self.ssl_ca_location, self.ssl_certificate_location, self.ssl_key_location):
            if path is not None and not path.is_file():
                raise ValueError(f"SSL file {path} does not exist")
        return self

    def require_bootstrap(self) -> str:
        """Return the bootstrap servers.

        Raises:
            SettingsError: when none are configured.
        """
        if not self.bootstrap_servers:
            raise SettingsError(
                f"{ENV_PREFIX}KAFKA_BOOTSTRAP_SERVERS: not set (set it, or use the embedded profile "
                "and run `revstream stack up`)"
            )
        return self.bootstrap_servers

    def confluent_config(self) -> dict[str, str]:
        """Return the librdkafka (confluent-kafka) settings shared by producers, consumers and admin."""
        config: dict[str, str] = {
            "bootstrap.servers": self.require_bootstrap(),
            "security.protocol": self.security_protocol,
            "client.id": self.client_id,
        }
        if self.sasl_mechanism is not None:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        for key, path in (
            ("ssl.ca.location", self.ssl_ca_location),
            ("ssl.certificate.location", self.ssl_certificate_location),
            ("ssl.key.location", self.ssl_key_location),
        ):
            if path is not None:
                config[key] = str(path)
        if self.ssl_key_password is not None:
            config["ssl.key.password"] = self.ssl_key_password.get_secret_value()
        return config

    def consumer_config(self, group_id: str, **overrides: str | int | bool) -> dict[str, Any]:
        """Return a confluent-kafka consumer config for ``group_id`` (manual commits, earliest)."""
        config: dict[str, Any] = {
            **self.confluent_config(),
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
        if self.session_timeout_ms is not None:
            config["session.timeout.ms"] = self.session_timeout_ms
        if self.heartbeat_interval_ms is not None:
            config["heartbeat.interval.ms"] = self.heartbeat_interval_ms
        config.update(overrides)
        return config

    def producer_config(self, **overrides: str | int | bool) -> dict[str, Any]:
        """Return a confluent-kafka producer config: idempotent (unless switched off), acks=all, batched."""
        config: dict[str, Any] = {
            **self.confluent_config(),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "none",
        }
        if self.idempotence is False:
            # Without idempotence librdkafka may reorder a retried request past a later one, unless
            # only one is in flight per connection.
            config.update({"enable.idempotence": False, "max.in.flight.requests.per.connection": 1})
        config.update(overrides)
        return config

    def aiokafka_config(self) -> dict[str, Any]:
        """Return keyword arguments for aiokafka clients (the dialect Faust speaks underneath)."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.require_bootstrap().split(","),
            "security_protocol": self.security_protocol,
            "client_id": self.client_id,
        }
        if self.sasl_mechanism is not None:
            config["sasl_mechanism"] = self.sasl_mechanism
            config["sasl_plain_username"] = self.sasl_username
            config["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        if self.security_protocol in ("SSL", "SASL_SSL"):
            config["ssl_context"] = self.ssl_context()
        if self.session_timeout_ms is not None:
            config["session_timeout_ms"] = self.session_timeout_ms
        if self.heartbeat_interval_ms is not None:
            config["heartbeat_interval_ms"] = self.heartbeat_interval_ms
        return config

    def faust_broker_urls(self) -> list[str]:
        """Return the broker URLs in Faust's ``kafka://host:port`` form."""
        return [f"kafka://{server.strip()}" for server in self.require_bootstrap().split(",")]

    def ssl_context(self) -> Any:
        """Return an ``ssl.SSLContext`` built from the CA, certificate and key paths."""
        import ssl

        context = ssl.create_default_context(
            cafile=str(self.ssl_ca_location) if self.ssl_ca_location else None
        )
        if self.ssl_certificate_location is not None:
            context.load_cert_chain(
                str(self.ssl_certificate_location),
                str(self.ssl_key_location) if self.ssl_key_location else None,
                self.ssl_key_password.get_secret_value() if self.ssl_key_password else None,
            )
        return context


class RegistrySettings(_Frozen):
    """Where the Confluent-compatible schema registry is, and its optional basic-auth credentials."""

    url: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    # For the registry service itself (`revstream registry serve`): the HTTP basic-auth users it
    # accepts, "user:password[,user:password...]"; unset means no authentication.
    server_users: SecretStr | None = None

    @model_validator(mode="after")
    def _credentials_once(self) -> RegistrySettings:
        if self.url and urlsplit(self.url).username is not None and (self.username or self.password):
            # confluent-kafka's client refuses the pair at first use; say so at start, in one line.
            raise ValueError(
                "credentials are given twice: in the URL's user:password@ part and in "
                f"{ENV_PREFIX}REGISTRY_USERNAME/_PASSWORD; keep only one of them"
            )
        return self

    def require_url(self) -> str:
        """Return the registry URL.

        Raises:
            SettingsError: when none is configured.
        """
        if not self.url:
            raise SettingsError(
                f"{ENV_PREFIX}REGISTRY_URL: not set (set it, or use the embedded profile and run "
                "`revstream stack up`)"
            )
        return self.url.rstrip("/")

    def client_config(self) -> dict[str, str]:
        """Return the configuration dict of confluent-kafka's ``SchemaRegistryClient``."""
        config = {"url": self.require_url()}
        if self.username is not None and self.password is not None:
            config["basic.auth.user.info"] = f"{self.username}:{self.password.get_secret_value()}"
        return config


class DatabaseSettings(_Frozen):
    """The PostgreSQL ERP ledger (and the embedded registry's store)."""

    url: SecretStr | None = None

    def conninfo(self) -> str:
        """Return the psycopg connection string.

        Raises:
            SettingsError: when no database URL is configured.
        """
        if self.url is None:
            raise SettingsError(
                f"{ENV_PREFIX}DATABASE_URL: not set (set it, or use the embedded profile and run "
                "`revstream stack up`)"
            )
        return self.url.get_secret_value()

    def redacted(self) -> str:
        """Return the URL (or ``key=value`` string) with its password masked, for logs and status output."""
        return redact_conninfo(self.url.get_secret_value()) if self.url is not None else "(not set)"


class TopicsSettings(_Frozen):
    """How the topic catalog is laid out on this cluster."""

    namespace: str = Field(default="revstream", pattern=r"^[A-Za-z0-9._-]+$")
    partitions: int = Field(default=6, ge=1, le=1000)
    replication_factor: int | None = Field(default=None, ge=1, le=10)

    def effective_replication(self, embedded: bool) -> int:
        """Return the replication factor: as set, else 1 on the single embedded broker, else 3."""
        if self.replication_factor is not None:
            return self.replication_factor
        return 1 if embedded else 3


class GatewayToken(_Frozen):
    """One bearer token of the HTTP ingest gateway: the source it speaks for and what it may send."""

    token: SecretStr
    source: str = Field(min_length=1)
    event_types: tuple[str, ...]


GATEWAY_TOKEN_MIN_LENGTH = 16


class GatewaySettings(_Frozen):
    """The HTTP ingest gateway: where it listens, its limits and the tokens of its producing sources.

    ``REVSTREAM_GATEWAY_TOKENS`` is JSON, ``{"<token>": {"source": "billing", "event_types":
    ["invoice_posted"]}}``; the tokens are kept as secrets and never logged or echoed in errors.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8088, ge=0, le=65535)
    tokens: tuple[GatewayToken, ...] = ()
    max_request_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    max_batch_items: int = Field(default=500, ge=1, le=100_000)
    delivery_timeout_ms: int = Field(default=5000, ge=100, le=300_000)
    idempotency_cache_size: int = Field(default=100_000, ge=0, le=10_000_000)

    @model_validator(mode="before")
    @classmethod
    def _tokens_from_mapping(cls, data: Any) -> Any:
        # The environment gives {"<token>": {...}}; the model keeps a tuple so each token is a secret.
        if isinstance(data, dict) and isinstance(data.get("tokens"), dict):
            grants = [
                {"token": token, **grant} if isinstance(grant, dict) else grant
                for token, grant in data["tokens"].items()
            ]
            data = {**data, "tokens": grants}
        return data

    @field_validator("tokens")
    @classmethod
    def _sound_tokens(cls, tokens: tuple[GatewayToken, ...]) -> tuple[GatewayToken, ...]:
        # Checked here rather than on each token so that no message ever quotes a token's value.
        secrets = [grant.token.get_secret_value() for grant in tokens]
        for grant, secret in zip(tokens, secrets, strict=True):
            if len(secret) < GATEWAY_TOKEN_MIN_LENGTH:
                raise ValueError(
                    f"the token of source {grant.source!r} is shorter than {GATEWAY_TOKEN_MIN_LENGTH} "
                    "characters; use a long random token"
                )
            unknown = sorted(set(grant.event_types) - set(EVENT_TYPES))
            if unknown:
                raise ValueError(
                    f"the token of source {grant.source!r} allows unknown event types {unknown}; "
                    f"use some of {', '.join(EVENT_TYPES)}"
                )
        if len(set(secrets)) != len(secrets):
            raise ValueError("the same token is given twice; give every source its own token")
        return tokens


ProcessingGuarantee = Literal["at_least_once", "exactly_once"]


class WorkerSettings(_Frozen):
    """The stream-processing workers (``revstream worker``): guarantees, state and retry policy.

    ``group_id`` defaults to ``<namespace>-processors``, so two deployments under different topic
    namespaces never share a consumer group or table changelogs.
    """

    processing_guarantee: ProcessingGuarantee = "at_least_once"
    group_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]+$")
    data_dir: Path = Path(".revstream/worker")
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)
    dedupe_horizon: timedelta = Field(default=timedelta(days=7), gt=timedelta(0))
    master_retry_attempts: int = Field(default=6, ge=1, le=1000)
    master_retry_backoff: timedelta = Field(default=timedelta(seconds=1), gt=timedelta(0))
    master_retry_backoff_max: timedelta = Field(default=timedelta(minutes=5), gt=timedelta(0))
    reconciliation_tolerance: int = Field(default=0, ge=0)
    batch_size: int = Field(default=5000, ge=1, le=1_000_000)
    commit_interval: timedelta = Field(default=timedelta(seconds=2.8), gt=timedelta(0))
    """How often Faust commits the offsets of finished batches (its ``broker_commit_interval``)."""
    commit_every: int = Field(default=10_000, ge=1)
    """Commit at once after this many finished records (Faust's ``broker_commit_every``)."""
    failure_attempts: int = Field(default=6, ge=1, le=100)
    """Attempts at a batch that fails for the infrastructure's fault before the worker stops."""
    failure_share_max: float = Field(default=0.5, gt=0, le=1)
    """A batch whose records fail the same way at more than this share stops the worker..."""
    failure_share_min_records: int = Field(default=100, ge=1)
    """...when at least this many of them did (a few bad records are dead-lettered)."""
    buffered_records_per_partition: int = Field(default=10_000, ge=1)
    """Records held in memory per input partition before it is paused (Kafka Streams' setting)."""
    parked_in_memory_max: int = Field(default=20_000, ge=1)
    """Parked records held in memory until due before the retry topic is paused."""
    cache_entries_max: int = Field(default=100_000, ge=1)
    """Entries of each in-memory cache (decoded customers, unknown schema ids)."""

    @field_validator(
        "dedupe_horizon", "master_retry_backoff", "master_retry_backoff_max", "commit_interval", mode="before"
    )
    @classmethod
    def _seconds_or_iso(cls, value: Any) -> Any:
        # The environment gives strings: plain seconds ("0.5") or an ISO-8601 duration ("P7D").
        if isinstance(value, str):
            try:
                return timedelta(seconds=float(value))
            except OverflowError:
                raise ValueError("is more seconds than a duration can hold (999,999,999 days)") from None
            except ValueError:
                return value
        return value

    def effective_group_id(self, namespace: str) -> str:
        """Return the consumer group (and Faust app id) of the workers of ``namespace``."""
        return self.group_id or f"{namespace}-processors"


class LagSettings(_Frozen):
    """The consumer-lag exporter (``revstream lag serve``): where it listens, what and how often it polls.

    ``group_allow`` / ``group_deny`` are regular expressions matched against whole group ids.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    poll_interval: float = Field(default=5.0, gt=0, le=3600)
    """Seconds between two polls of the groups' offsets (and points added to the lookup tables)."""
    window: int = Field(default=10, ge=2, le=1000)
    """Commits per partition the status rules look at (Burrow's ``intervals``)."""
    lookup_table_size: int = Field(default=60, ge=2, le=10_000)
    """(offset, time) points kept per partition for the lag in seconds (kafka-lag-exporter's default)."""
    group_allow: str = ".*"
    group_deny: str | None = None
    cluster_name: str = Field(default="revstream", pattern=r"^[A-Za-z0-9._-]+$")

    @field_validator("group_allow", "group_deny")
    @classmethod
    def _a_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression ({exc})") from exc
        return value


class Settings(BaseSettings):
    """Everything a revstream process is configured with."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="_",
        env_nested_max_split=1,
        env_file=".env",
        extra="ignore",
        frozen=True,
    )

    profile: Profile = "embedded"
    home: Path = Field(default=Path(".revstream"), description="state directory of the embedded stack")
    loglevel: Literal["debug", "info", "warning", "error"] = "info"
    kafka: KafkaSettings = KafkaSettings()
    registry: RegistrySettings = RegistrySettings()
    database: DatabaseSettings = DatabaseSettings()
    topics: TopicsSettings = TopicsSettings()
    gateway: GatewaySettings = GatewaySettings()
    worker: WorkerSettings = WorkerSettings()
    lag: LagSettings = LagSettings()

    @model_validator(mode="before")
    @classmethod
    def _plain_database_url(cls, data: Any) -> Any:
        # DATABASE_URL is the name every PostgreSQL tool and platform uses; honour it as a fallback.
        plain = os.environ.get("DATABASE_URL")
        if plain and isinstance(data, dict):
            database = data.get("database") or {}
            if isinstance(database, dict) and not database.get("url"):
                data = {**data, "database": {**database, "url": plain}}
        return data

    @property
    def state_file(self) -> Path:
        """Path of the embedded stack's state file (ports, pids, endpoints)."""
        return self.home / "stack.json"

    def with_embedded_endpoints(self) -> Settings:
        """Fill unset endpoints from the running embedded stack; explicit settings win.

        Raises:
            StackError: with the embedded profile when the stack is not running.
        """
        if self.profile != "embedded":
            return self
        if self.kafka.bootstrap_servers and self.registry.url and self.database.url:
            return self._with_embedded_defaults()
        try:
            state = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            raise StackError(
                f"the embedded stack is not running (no {self.state_file}); "
                "start it with `revstream stack up`"
            ) from None
        endpoints = state.get("endpoints", {})
        kafka = self.kafka
        if not kafka.bootstrap_servers:
            kafka = kafka.model_copy(update={"bootstrap_servers": endpoints.get("bootstrap_servers")})
        registry = self.registry
        if not registry.url and endpoints.get("registry_url"):
            registry = registry.model_copy(update={"url": endpoints["registry_url"]})
        database = self.database
        if database.url is None and endpoints.get("database_url"):
            database = DatabaseSettings(url=SecretStr(endpoints["database_url"]))
        filled = self.model_copy(update={"kafka": kafka, "registry": registry, "database": database})
        return filled._with_embedded_defaults()

    def _with_embedded_defaults(self) -> Settings:
        update: dict[str, Any] = {}
        if self.kafka.session_timeout_ms is None:
            update["session_timeout_ms"] = EMBEDDED_SESSION_TIMEOUT_MS
        if self.kafka.heartbeat_interval_ms is None:
            update["heartbeat_interval_ms"] = EMBEDDED_HEARTBEAT_INTERVAL_MS
        if self.kafka.idempotence is None:
            update["idempotence"] = EMBEDDED_IDEMPOTENCE
        if not update:
            return self
        return self.model_copy(update={"kafka": self.kafka.model_copy(update=update)})

    @property
    def embedded(self) -> bool:
        """Whether this process runs against the embedded stack (and its broker's deviations)."""
        return self.profile == "embedded"


def _env_name(loc: tuple[int | str, ...]) -> str:
    parts = [str(part) for part in loc if not str(part).startswith("function-")]
    if parts and parts[0] == "database" and parts[1:] == ["url"]:
        return f"{ENV_PREFIX}DATABASE_URL (or DATABASE_URL)"
    return ENV_PREFIX + "_".join(parts).upper() if parts else f"{ENV_PREFIX}*"


_SECRET_FIELDS = frozenset(
    {"password", "sasl_password", "ssl_key_password", "server_users", "tokens", "token", "database", "url"}
)
"""Fields whose given value is never quoted in an error: secrets, and URLs that may hold one."""


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment (and ``.env``), overrides taking precedence.

    Raises:
        SettingsError: one line per problem, naming the variable and the reason (never a secret).
    """
    try:
        return Settings(**overrides)
    except SourceError as exc:
        raise SettingsError(_source_problem(exc)) from None
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            reason = error["msg"].removeprefix("Value error, ")
            given = error.get("input")
            secret = any(str(part) in _SECRET_FIELDS for part in error["loc"])
            suffix = f" (got {given!r})" if isinstance(given, str | int) and not secret else ""
            problems.append(f"{_env_name(error['loc'])}: {reason}{suffix}")
        raise SettingsError("; ".join(problems)) from None


def _source_problem(exc: SourceError) -> str:
    # pydantic-settings says only which top-level field failed ("gateway"); name the variable, and
    # JSON's reason, which gives a position and never quotes the value.
    field = next(iter(re.findall(r'field "([a-z_]+)"', str(exc))), "")
    prefix = f"{ENV_PREFIX}{field.upper()}_" if field else ENV_PREFIX
    for name, value in sorted(os.environ.items()):
        if not name.upper().startswith(prefix) or value.strip()[:1] not in ("{", "["):
            continue
        try:
            json.loads(value)
        except ValueError as error:
            return f"{name.upper()}: not valid JSON ({error})"
    cause = exc.__cause__
    reason = f"not valid JSON ({cause})" if isinstance(cause, ValueError) else "cannot be read"
    return f"{prefix}*: {reason}"
