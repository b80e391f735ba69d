"""What the facades share: reading the other SDK's environment variables, refusing options
nobody ever had and noting the ones tenantscope has no use for, instrumenting by name."""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import tenantscope
from tenantscope.sdk._stats import log_once

log = logging.getLogger("tenantscope.compat")

_INSTRUMENT: dict[str, Callable[[], None]] = {
    "openai": lambda: tenantscope.instrument_openai(),
    "anthropic": lambda: tenantscope.instrument_anthropic(),
}


def env_text(name: str) -> str | None:
    """The variable's value, or None when it is unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or None


def env_flag(name: str, true: Iterable[str] = ("1", "true")) -> bool | None:
    """True/False from the variable as the other SDK reads it (anything else is False),
    or None when it is unset."""
    value = os.environ.get(name)
    if value is None:
        return None
    return value.strip().lower() in true


def check_options(api: str, given: Mapping[str, Any], known: Iterable[str]) -> None:
    """Options the other SDK has but tenantscope does not need are accepted and noted
    once; a name neither has is a TypeError, as a typo in a plain call would be."""
    known = frozenset(known)
    for name in given:
        if name not in known:
            raise TypeError(f"{api}() got an unexpected keyword argument {name!r}")
    ignored = sorted(name for name, value in given.items() if value is not None)
    if ignored:
        log_once(
            f"compat:{api}:" + ",".join(ignored),
            "tenantscope: %s(): %s not supported by tenantscope, ignored",
            api,
            ", ".join(ignored),
        )


def instrument(names: Iterable[str]) -> list[str]:
    """Instrument the named client libraries that are installed (the others are skipped,
    as the other SDKs do); returns the names instrumented."""
    done: list[str] = []
    for name in names:
        if name not in _INSTRUMENT or importlib.util.find_spec(name) is None:
            continue
        try:
            _INSTRUMENT[name]()
        except Exception:  # an incompatible version must not break the app's startup
            log.warning("could not instrument %s", name, exc_info=True)
            continue
        done.append(name)
    return done
