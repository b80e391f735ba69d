"""Which tenants a caller may see. The query layer applies it; routers never filter."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Scope:
    """``tenant_id is None`` means every tenant (admin and reader keys)."""

    tenant_id: str | None = None

    @classmethod
    def all(cls) -> Scope:
        return cls(None)

    @classmethod
    def tenant(cls, tenant_id: str) -> Scope:
        return cls(tenant_id)

    @property
    def is_all(self) -> bool:
        return self.tenant_id is None

    def allows(self, tenant_id: str) -> bool:
        return self.tenant_id is None or self.tenant_id == tenant_id
