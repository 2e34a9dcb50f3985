"""Find backends by name through the ``kotani_receiver.backends`` entry-point group.

A third party ships a backend by declaring, in its own package::

    [project.entry-points."kotani_receiver.backends"]
    mynode = "mypackage.backend:MyNodeBackend"

and listing ``mynode`` in ``RECEIVER_BACKENDS``. The class carries its own ``Config`` (a
``BackendConfig``) read from the environment; its errors name the variable, never its value.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any, cast

from pydantic import ValidationError

from receiver.errors import ConfigError
from receiver.lightning.base import BackendContext, BackendFactory, LightningBackend

GROUP = "kotani_receiver.backends"


@functools.cache  # a scan of every installed distribution: once per process, not per lookup
def available() -> dict[str, EntryPoint]:
    """Installed backends by name."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def backend_class(name: str) -> BackendFactory:
    """The backend class registered under ``name``; ConfigError if there is none."""
    found = available()
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise ConfigError(f"RECEIVER_BACKENDS: unknown backend {name!r} (installed: {known})")
    return cast(BackendFactory, found[name].load())


def load_backend(name: str, context: BackendContext, **config: Any) -> LightningBackend:
    """Build one backend: its config from ``RECEIVER_<NAME>_*`` (or ``config``), then the class."""
    factory = backend_class(name)
    try:
        settings = factory.Config(**config)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_env_name(factory, err.get('loc'))}: {err.get('msg', 'invalid')}"
            for err in exc.errors(include_input=False, include_url=False)
        )
        raise ConfigError(f"backend {name}: {problems}") from None
    return factory(settings, context)


def load_backends(names: Sequence[str], context: BackendContext) -> list[LightningBackend]:
    """Build the configured backends in order."""
    return [load_backend(name, context) for name in names]


def _env_name(factory: BackendFactory, loc: Any) -> str:
    prefix = str(factory.Config.model_config.get("env_prefix", ""))
    field = str(loc[0]).upper() if loc else ""
    return f"{prefix}{field}" if field else prefix.rstrip("_")
