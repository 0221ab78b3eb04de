"""Shared test fixtures."""

from concurrent.futures import ThreadPoolExecutor

import pytest


@pytest.fixture
def long_run_cache(tmp_path, monkeypatch):
    """A factory: ``long_run_cache(name, spec_text)`` writes the spec into a temporary
    ``book/specs``, points :mod:`tsode.book.long_runs` at temporary spec/data dirs, computes the
    cache with one thread and returns the spec's path."""
    from tsode.book import long_runs

    specs, data = tmp_path / "specs", tmp_path / "data"
    specs.mkdir()
    monkeypatch.setattr(long_runs, "SPECS", specs)
    monkeypatch.setattr(long_runs, "DATA", data)
    monkeypatch.setattr(long_runs, "ROOT", tmp_path)

    def make(name: str, spec_text: str):
        path = specs / f"{name}.toml"
        path.write_text(spec_text)
        long_runs.compute(name, executor=ThreadPoolExecutor(1))
        return path

    return make
