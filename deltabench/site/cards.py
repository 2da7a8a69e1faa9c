"""A card per registered component: what it is, its parameters, where it comes from and where it
knowingly differs from the paper, all read from the component class (never from a list here)."""

from __future__ import annotations

import re
from html import escape

from ..registry import ComponentInfo, Registry

__all__ = ["component_cards"]


def _inline_code(text: str) -> str:
    """Escaped text with its `backticked` spans as ``<code>`` (how deviations name options)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text))


def _card(info: ComponentInfo, used: bool) -> str:
    cls = info.cls
    params = "".join(
        f"<tr><td><code>{escape(name)}</code></td>"
        f"<td><code>{escape(repr(field.get_default(call_default_factory=True)))}</code></td>"
        f"<td>{escape(field.description or '')}</td></tr>"
        for name, field in cls.Params.model_fields.items()
    )
    deviations = "".join(f"<li>{_inline_code(d)}</li>" for d in cls.deviations)
    badges = [f'<span class="badge">{escape(info.kind)}</span>']
    if cls.reference:
        badges.append('<span class="badge">reference</span>')
    if used:
        badges.append('<span class="badge used">in these runs</span>')
    return (
        f'<article class="card" data-kind="{escape(info.kind)}" id="card-{escape(info.kind)}-{escape(info.name)}">'
        f"<h4>{escape(info.name)} {''.join(badges)}</h4>"
        f"<p>{escape(cls.summary())}</p>"
        f'<p class="meta">version {escape(cls.version)} · from <code>{escape(info.distribution)}</code>'
        f" · <code>{escape(cls.__module__)}.{escape(cls.__qualname__)}</code></p>"
        + (
            f"<details><summary>{len(cls.Params.model_fields)} parameters</summary>"
            f'<table class="params"><thead><tr><th>parameter</th><th>default</th><th>meaning</th></tr></thead>'
            f"<tbody>{params}</tbody></table></details>"
            if params
            else ""
        )
        + (
            f'<p class="meta">Differs from the paper:</p><ul class="deviations">{deviations}</ul>'
            if deviations
            else ""
        )
        + "</article>"
    )


def component_cards(registry: Registry, used: set[str]) -> str:
    """Cards of every registered component, grouped by kind; ``used`` names (or labels) found in
    the runs' rows get a badge."""
    groups: dict[str, list[str]] = {}
    for info in registry.all():
        groups.setdefault(info.kind, []).append(_card(info, info.name in used))
    return "".join(
        f'<h3>{escape(kind)}s</h3><div class="cards">{"".join(cards)}</div>' for kind, cards in groups.items()
    )
