"""The two store interfaces every backend implements, and the config value types.

EventStore holds usage records (append-heavy, analytic). ConfigStore holds the small,
transactional configuration (tenants, price overrides, API keys) and the audit log of its
changes. Both have contract test suites
(``tests/storage/contract_*.py``) that each backend must pass.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, get_args

import pyarrow as pa

from tenantscope.records import UsageRecord

if TYPE_CHECKING:
    from tenantscope.storage.alert_state import AlertStore
    from tenantscope.storage.limit_state import LimitStore
    from tenantscope.storage.plan_state import PlanStore


@dataclass(frozen=True, slots=True)
class Dialect:
    """The SQL fragments that differ between analytic backends.

    The query layer writes one SQL text per query and asks the dialect for these pieces.
    Parameters are always named ``:name`` in the query layer's text; ``render`` turns them
    into the backend's own syntax.
    """

    name: str

    def quantile(self, expr: str, q: float) -> str:
        if self.name == "clickhouse":
            return f"quantile({q})({expr})"
        return f"quantile_cont({expr}, {q})"

    def bucket(self, interval: str, column: str = "start_time") -> str:
        if self.name == "clickhouse":
            fn = {"hour": "toStartOfHour", "day": "toStartOfDay"}[interval]
            return f"{fn}({column})"
        return f"date_trunc('{interval}', {column})"

    def contains(self, list_param: str, expr: str) -> str:
        """``expr`` is one of the values of the list parameter ``:list_param``."""
        if self.name == "clickhouse":
            return f"has(:{list_param}, {expr})"
        return f"list_contains(:{list_param}, {expr})"

    def ordered_list(self, expr: str, by: str) -> str:
        """The values of ``expr`` in a group as one list, ordered by ``by``."""
        if self.name == "clickhouse":
            return f"arrayMap(p -> p.2, arraySort(groupArray(({by}, {expr}))))"
        return f"list({expr} ORDER BY {by})"

    def epoch_seconds(self, expr: str) -> str:
        """A timestamp as whole seconds since 1970 (UTC)."""
        if self.name == "clickhouse":
            return f"toInt64(toUnixTimestamp({expr}))"
        return f"CAST(epoch({expr}) AS BIGINT)"

    def distinct_concat(self, expr: str) -> str:
        """Comma-joined distinct non-null values of ``expr``."""
        if self.name == "clickhouse":
            return f"arrayStringConcat(arraySort(groupUniqArray({expr})), ',')"
        return f"string_agg(DISTINCT {expr}, ',' ORDER BY {expr})"


class EventStore(abc.ABC):
    """Usage records. Writes are whole batches: all of a call's rows or none.

    Beside ``records`` every backend keeps the hourly rollup tables described in
    ``storage/rollups.py`` up to date in the same transactions; the query layer reads them."""

    dialect: Dialect

    @abc.abstractmethod
    def write(
        self,
        inserts: Sequence[UsageRecord],
        updates: Sequence[UsageRecord] = (),
        *,
        tables: Sequence[pa.Table] = (),
        replaced: Sequence[UsageRecord] = (),
    ) -> None:
        """Append ``inserts`` and the rows of ``tables`` (records already converted with
        ``storage.serialize.records_to_arrow``), and replace ``updates`` (matched by trace_id,
        event_id), in one transaction. Durable when it returns. ``replaced``, when given,
        are the stored versions of all of ``updates`` (the caller read them), so the
        store need not look them up again."""

    @abc.abstractmethod
    def existing_event_keys(
        self, event_ids: Sequence[str], start_min: datetime, start_max: datetime
    ) -> set[tuple[str, str]]:
        """The (tenant_id, event_id) of stored records with one of ``event_ids`` and a
        start_time inside the range (an id an app chose is unique within its tenant only).

        A duplicate carries the start_time of its original, so bounding the look-up by the
        batch's time range is exact and lets the store skip almost all data."""

    @abc.abstractmethod
    def trace_records(
        self, trace_ids: Sequence[str], start_min: datetime, start_max: datetime
    ) -> list[UsageRecord]:
        """All stored records of these traces that started inside the range."""

    @abc.abstractmethod
    def trace_bounds(self, trace_id: str) -> tuple[datetime, datetime] | None:
        """The first and last start time among the stored spans of ``trace_id`` (naive
        UTC), or None when none is stored: a trace is read within them, not looked for in
        all the data. May be wider than exact (hash collisions), never narrower."""

    @abc.abstractmethod
    def response_records(
        self, response_ids: Sequence[str], start_min: datetime, start_max: datetime
    ) -> list[UsageRecord]:
        """The stored LLM records naming one of ``response_ids`` that started inside the
        range (copies of one provider response, ``ingest/duplicates.py``)."""

    @abc.abstractmethod
    def snapshot(self) -> AbstractContextManager[None]:
        """Within it, this thread's reads (``fetch``, ``fetch_arrow``) all see the store as
        it was at the first of them: a query that reads in several steps (the query layer
        decides from one read what the next reads) gets figures of one moment. Nests."""

    @abc.abstractmethod
    def fetch(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a read-only query written by the query layer (named ``:params``)."""

    @abc.abstractmethod
    def iter_records(
        self, start: datetime, end: datetime, batch_size: int = 10_000
    ) -> Iterator[list[UsageRecord]]:
        """Records with ``start <= start_time < end`` in batches, oldest first."""

    @abc.abstractmethod
    def count(self, start: datetime | None = None, end: datetime | None = None) -> int:
        """How many records are stored (optionally in a time range)."""

    @abc.abstractmethod
    def export(
        self,
        path: str,
        fmt: str,
        start: datetime,
        end: datetime,
        progress: Callable[[datetime], None] | None = None,
    ) -> int:
        """Write records in the range to ``path`` as csv or parquet, in time order, in
        bounded memory whatever the range holds; return the row count. ``progress`` is
        called with the time written up to, now and then."""

    @abc.abstractmethod
    def rebuild_rollups(self) -> None:
        """Recompute the rollup tables (``storage/rollups.py``) from the records."""

    @abc.abstractmethod
    def compact_rollups(self) -> None:
        """Fold rollup delta rows; never changes what a query answers."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise if the store cannot answer (readiness)."""

    @abc.abstractmethod
    def close(self) -> None: ...


@dataclass(slots=True)
class TenantConfig:
    tenant_id: str
    display_name: str = ""
    tier: str = ""
    sla_p95_ms: int | None = None
    rate_limit_rpm: int | None = None
    monthly_budget_usd: Decimal | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


# Fields of TenantConfig an operator may set (``tenants set``, later the admin API).
TENANT_SETTABLE: tuple[str, ...] = (
    "display_name",
    "tier",
    "sla_p95_ms",
    "rate_limit_rpm",
    "monthly_budget_usd",
)


@dataclass(slots=True)
class PriceOverride:
    """An operator's negotiated price for a model, in USD per million tokens.

    ``provider`` empty matches any provider. Fields left None fall back to the catalog
    price of that token kind (or the input price for cache tokens when the catalog has
    none)."""

    model: str
    effective_from: datetime
    provider: str = ""
    input_mtok: Decimal | None = None
    output_mtok: Decimal | None = None
    cache_read_mtok: Decimal | None = None
    cache_write_mtok: Decimal | None = None
    note: str = ""
    id: int | None = None
    created_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# Roles of API keys (see tenantscope.server.keys for what each may do).
ROLES: tuple[str, ...] = ("admin", "ingest", "reader", "tenant")


@dataclass(slots=True)
class ApiKey:
    """A stored API key: the secret itself is never kept, only its hash."""

    key_id: str
    role: str
    name: str = ""
    tenant_id: str | None = None  # required for "tenant", optional for "ingest"
    secret_hash: str = ""
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who changed the configuration, as the audit log records it.

    ``kind`` is how the change came: ``session`` (a dashboard form), ``api`` (the JSON API
    with a key), ``cli`` (a ``tenantscope`` command on the data dir) or ``system`` (code
    that names no one). For sessions and API keys, the key's id, label and role at the
    time; never its secret."""

    kind: str
    key_id: str | None = None
    name: str = ""
    role: str | None = None

    def describe(self) -> str:
        """One line for tables: ``cli``, ``session admin 3f9c2a1b7d4e (ops laptop)``."""
        parts = [self.kind]
        if self.role:
            parts.append(self.role)
        if self.key_id:
            parts.append(self.key_id)
        if self.name:
            parts.append(f"({self.name})")
        return " ".join(parts)


CLI = Actor("cli")
SYSTEM = Actor("system")

# What the audit log records. Each names what changed and how.
AuditAction = Literal[
    "tenant.create",
    "tenant.update",
    "tenant.delete",
    "price_override.add",
    "price_override.replace",
    "price_override.delete",
    "key.create",
    "key.revoke",
    "alert_rule.create",
    "alert_rule.update",
    "alert_rule.delete",
    "alert_rule.silence",
    "contact_point.create",
    "contact_point.update",
    "contact_point.delete",
    "slo.create",
    "slo.delete",
    "limit.create",
    "limit.update",
    "limit.delete",
    "limit_approval.create",
    "limit_approval.revoke",
    "plan.create",
    "plan.update",
    "plan.delete",
    "plan.assign",
    "plan.unassign",
]
AUDIT_ACTIONS: tuple[str, ...] = get_args(AuditAction)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One config change: who, when (UTC), what, on which target, and the values before
    and after (None when there was nothing: a creation's before, a deletion's after).
    Targets are tenant ids, model names and key ids; a key's secret or hash is never in
    an entry."""

    id: int
    at: datetime
    actor: Actor
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class ConfigStore(abc.ABC):
    """Tenant configuration, price overrides and API keys, and the audit log of their
    changes; ``alerts`` holds the alerts' rules and state (``storage/alert_state.py``), ``limits``
    the limits' definitions, approvals and notices (``storage/limit_state.py``), ``plans``
    the billing plans and their assignment to tenants (``storage/plan_state.py``).
    Every method is its own transaction; every method that changes something
    writes its audit entry in that same transaction (``actor`` says who), so no change
    is stored without its entry, or the other way round. The audit log is append-only:
    there is no method to change or remove an entry."""

    @property
    @abc.abstractmethod
    def alerts(self) -> AlertStore: ...

    @property
    @abc.abstractmethod
    def limits(self) -> LimitStore: ...

    @property
    @abc.abstractmethod
    def plans(self) -> PlanStore: ...

    @abc.abstractmethod
    def get_tenant(self, tenant_id: str) -> TenantConfig | None: ...

    @abc.abstractmethod
    def list_tenants(self) -> list[TenantConfig]: ...

    @abc.abstractmethod
    def get_tenants(self, tenant_ids: Sequence[str]) -> dict[str, TenantConfig]: ...

    @abc.abstractmethod
    def set_tenant(self, tenant_id: str, *, actor: Actor = SYSTEM, **fields: Any) -> TenantConfig:
        """Create or update; only the given fields change. ``None`` clears a field."""

    @abc.abstractmethod
    def delete_tenant(self, tenant_id: str, *, actor: Actor = SYSTEM) -> bool: ...

    @abc.abstractmethod
    def list_price_overrides(self, model: str | None = None) -> list[PriceOverride]:
        """Overrides ordered by model, then effective_from ascending."""

    @abc.abstractmethod
    def add_price_override(
        self, override: PriceOverride, *, actor: Actor = SYSTEM
    ) -> PriceOverride: ...

    @abc.abstractmethod
    def replace_price_override(
        self, override_id: int, override: PriceOverride, *, actor: Actor = SYSTEM
    ) -> PriceOverride | None:
        """Give override ``override_id`` the values of ``override`` (it keeps its id and
        creation time); None (and nothing changed) when there is no such override."""

    @abc.abstractmethod
    def delete_price_override(self, override_id: int, *, actor: Actor = SYSTEM) -> bool: ...

    @abc.abstractmethod
    def add_api_key(self, key: ApiKey, *, actor: Actor = SYSTEM) -> ApiKey: ...

    @abc.abstractmethod
    def get_api_key(self, key_id: str) -> ApiKey | None: ...

    @abc.abstractmethod
    def list_api_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""

    @abc.abstractmethod
    def revoke_api_key(self, key_id: str, *, actor: Actor = SYSTEM) -> bool:
        """Revoke an active key; False when there is no such active key. The last active
        admin key is never revoked (``errors.Conflict``): without one, nobody could manage
        keys any more. The check and the revocation are one transaction, so two
        revocations at once cannot remove the last two admin keys."""

    @abc.abstractmethod
    def touch_api_key(self, key_id: str, when: datetime) -> None:
        """Record a use of the key (callers throttle how often)."""

    @abc.abstractmethod
    def list_audit(
        self,
        *,
        action: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[AuditEntry]:
        """Audit entries, newest first: of one action, one target (exact), at or after
        ``since``, older than entry ``before_id`` (the next page), at most ``limit``."""

    @abc.abstractmethod
    def ping(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...
