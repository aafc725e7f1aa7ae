"""Stage a release with a release configuration: load it, hand its settings to the report layer.

:func:`excessmort.report.stage_release` reads no configuration (``report/`` never imports
``release/``); this loads one (a path, a :class:`~.config.Config` or ``None`` for the demo's) and
passes :meth:`~.config.Config.stage_settings` in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import Config, load_config

__all__ = ["stage_release"]


def stage_release(source: Any, *, config: Config | str | Path | None = None, **kwargs: Any) -> Path:
    """:func:`excessmort.report.stage_release` with the release configuration ``config``.

    Parameters
    ----------
    source : DataFrame, path or Fit
        As in :func:`excessmort.report.stage_release`.
    config : Config, path or None
        Release configuration (:func:`~.config.load_config`); ``None``: the demo's.
    **kwargs
        Passed on (``month``, ``out``, ``baseline``, ``live_root``, ``now``...).
    """
    from ..report.stage import stage_release as stage

    cfg = config if isinstance(config, Config) else load_config(config)
    return stage(source, config=cfg.stage_settings(), **kwargs)
