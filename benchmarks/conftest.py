"""Benchmark options: ``--full-scale`` adds the runs that take most of an hour on 2 cores."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--full-scale", action="store_true", help="also run the benchmarks marked full_scale (60,000 images)"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "full_scale: a paper-scale run, selected by --full-scale")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--full-scale"):
        return
    skip = pytest.mark.skip(reason="a full-scale run: pass --full-scale")
    for item in items:
        if "full_scale" in item.keywords:
            item.add_marker(skip)
