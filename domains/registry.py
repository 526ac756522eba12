"""The registered domains: the built-in ones plus the plug-ins ``DOMAIN_PLUGINS`` names.

A domain plug-in is an importable module with ``spec() -> DomainSpec`` (see ``domains.canvas``).
The built-in domains are listed in :data:`BUILTIN`; more are added without touching this code by
``DOMAIN_PLUGINS=package.module,…`` in the environment of every process (dispatcher, workers,
Beat), or by :func:`load` in a process that sets them up itself. Registering a spec makes its
domain and table names valid ``Domain``/``Table`` values; queues, routes, task registration,
tables, Beat entries and topics are all derived from what is registered here.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable
from dataclasses import replace

from core.settings import get_settings
from domains.canvas import DomainSpec
from domains.names import MAINTENANCE_QUEUE, Domain, Table, plug, queue_name
from domains.tables import TableSpec

#: The domains every installation has.
BUILTIN = ("domains.xact.plugin", "domains.claimx.plugin")

_specs: dict[Domain, DomainSpec] = {}
_loaded: set[str] = set()
_lock = threading.Lock()


def register(spec: DomainSpec) -> DomainSpec:
    """Add one domain. Its table names must be new; re-registering the same domain replaces it.

    A plug-in may name its domain and tables with plain strings (they are not ``Domain`` /
    ``Table`` values until now); the registered spec carries the enum values."""
    plug(Domain, str(spec.domain))
    domain = Domain(str(spec.domain))
    for table_spec in spec.tables:
        owner = next(
            (d for d, s in _specs.items() if d != domain and str(table_spec.name) in s.table_names()), None
        )
        if owner is not None:
            raise ValueError(f"table {table_spec.name} of {domain} is already declared by {owner}")
        plug(Table, str(table_spec.name))
    tables = tuple(replace(t, name=Table(str(t.name))) for t in spec.tables)
    if Table(str(spec.event_table)) not in {t.name for t in tables}:
        raise ValueError(f"{domain}: event table {spec.event_table} is not among its tables")
    _specs[domain] = replace(spec, domain=domain, tables=tables, event_table=Table(str(spec.event_table)))
    return _specs[domain]


def unload(modules: Iterable[str]) -> None:
    """Forget plug-ins :func:`load` registered (a test that plugged one in for itself). Their names
    stay valid ``Domain``/``Table`` values; their specs, tables and queues are gone."""
    with _lock:
        for name in modules:
            if name in _loaded and name not in BUILTIN:
                _loaded.discard(name)
                domain = Domain(str(importlib.import_module(name).spec().domain))
                _specs.pop(domain, None)


def load(modules: Iterable[str]) -> None:
    """Import plug-in modules and register their specs (each module once per process)."""
    with _lock:
        for name in modules:
            if name in _loaded:
                continue
            register(importlib.import_module(name).spec())
            _loaded.add(name)


def _ensure_loaded() -> None:
    if not _loaded.issuperset(BUILTIN):
        load(BUILTIN)
    wanted = get_settings().domain_plugins
    if not _loaded.issuperset(wanted):
        load(wanted)


def specs() -> dict[Domain, DomainSpec]:
    """Every registered domain's spec, built-in ones first."""
    _ensure_loaded()
    return dict(_specs)


def spec_of(domain: Domain | str) -> DomainSpec:
    _ensure_loaded()
    return _specs[Domain(domain)]


def domains() -> list[Domain]:
    return list(specs())


def registered_tables() -> dict[Table, TableSpec]:
    return {t.name: t for spec in specs().values() for t in spec.tables}


def domain_of_table(table: Table | str) -> Domain | None:
    for domain, spec in specs().items():
        if Table(table) in spec.table_names():
            return domain
    return None


def all_queues() -> list[str]:
    """Every stage queue of every registered domain, then the maintenance queue."""
    return [queue_name(d, s) for d, spec in specs().items() for s in spec.stages] + [MAINTENANCE_QUEUE]
