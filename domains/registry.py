"""Domain -> spec. The dispatcher looks domains up here; adding a domain adds one line."""

from __future__ import annotations

from core.security.urls import UrlPolicy
from core.settings import Settings
from domains.canvas import DomainSpec
from domains.names import Domain


def build_specs(settings: Settings) -> dict[Domain, DomainSpec]:
    from domains.claimx import canvas as claimx_canvas
    from domains.xact import canvas as xact_canvas

    policy = UrlPolicy.from_settings(settings)
    return {Domain.XACT: xact_canvas.spec(policy), Domain.CLAIMX: claimx_canvas.spec()}
