"""Command-line parameter types shared by the ``pipeline`` commands."""

from __future__ import annotations

from typing import Any

import click


class DomainParam(click.ParamType):
    """A registered domain: the built-in ones and the plug-ins ``DOMAIN_PLUGINS`` names, looked up
    when the command runs (a fixed ``click.Choice`` listed only the built-in ones)."""

    name = "domain"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from domains import registry  # at run time: DOMAIN_PLUGINS is read then

        known = [d.value for d in registry.domains()]
        if value in known:
            return str(value)
        self.fail(
            f"{value!r} is not a registered domain (registered: {', '.join(known)}; "
            "plug-ins come from DOMAIN_PLUGINS)",
            param,
            ctx,
        )

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "DOMAIN"


DOMAIN = DomainParam()
