"""Shared fixtures for the render tests: prepared test portraits (landmark cache in a temp dir)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from emostream.arkit import motion_vector

__all__ = ["astronaut_256", "render_cache", "renderer_256"]


@pytest.fixture(scope="session")
def render_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    old = os.environ.get("EMOSTREAM_CACHE")
    os.environ["EMOSTREAM_CACHE"] = str(tmp_path_factory.mktemp("emostream-cache"))
    yield
    if old is None:
        os.environ.pop("EMOSTREAM_CACHE", None)
    else:
        os.environ["EMOSTREAM_CACHE"] = old


@pytest.fixture(scope="session")
def astronaut_256(render_cache: None):
    from emostream.render.portrait import default_portrait, prepare_portrait

    return prepare_portrait(default_portrait(), 256)


@pytest.fixture(scope="session")
def renderer_256(astronaut_256):
    from emostream.render.analytic import AnalyticRenderer

    return AnalyticRenderer(astronaut_256)


#: Motion vectors by name (``vec(jawOpen=0.6, yaw=0.2)``).
vec = motion_vector
