"""The chapter contract (issue 10, item 2): settings dataclasses, frozen results, named seeds,
and notebook cells that only read fields."""

from __future__ import annotations

import ast
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tsode.book import chapter, experiments, pages

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class _Toy(chapter.Settings):
    """A settings class of a made-up experiment (not registered)."""

    PARTS = {"erf": {}, "relu": dict(eta=0.2)}
    MODE_VALUES = {"fast": dict(N=100)}
    PART_MODE_VALUES = {("relu", "fast"): dict(runs=2)}

    N: int = 1000
    eta: float = 0.1
    runs: int = 8
    L: tuple = (0, 1)


def test_settings_modes_and_parts():
    assert _Toy.full() == _Toy(N=1000, eta=0.1, runs=8)
    assert _Toy.fast() == _Toy(N=100)
    assert _Toy.full("relu") == _Toy(eta=0.2)
    assert _Toy.fast("relu") == _Toy(N=100, eta=0.2, runs=2)
    assert _Toy.fast("erf", runs=3).runs == 3


def test_settings_refuse_unknown_names_modes_and_parts():
    with pytest.raises(ValueError, match="unknown settings \\['etta'\\] of _Toy"):
        _Toy.full().replace(etta=0.2)
    with pytest.raises(ValueError, match="unknown settings \\['etta'\\]"):
        _Toy.fast(etta=0.2)
    with pytest.raises(ValueError, match="mode must be one of"):
        _Toy.of("slow")
    with pytest.raises(ValueError, match="part of _Toy must be one of \\['erf', 'relu'\\]"):
        _Toy.of("full", "tanh")


def test_settings_are_frozen_and_hashable_with_lists_as_tuples():
    s = _Toy.full().replace(L=[0, [1, 2]])
    assert s.L == (0, (1, 2)) and hash(s) == hash(_Toy(L=(0, (1, 2))))
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.N = 3


def test_chapter_wide_overrides_apply_where_the_name_exists():
    # a chapter's overrides dict may name settings of another experiment of the chapter
    assert _Toy.of("full", overrides={"N": 50, "something_else": 1}).N == 50


def test_named_seed_streams_are_distinct_and_reproducible():
    assert len(set(chapter.SEEDS.values())) == len(chapter.SEEDS)
    draws = {(n, i): chapter.seed_for(0, n, i) for n in chapter.SEEDS for i in (2, 3)}
    assert len(set(draws.values())) == len(draws)
    assert chapter.seed_for(0, "fig1.start", 4) == chapter.seed_for(0, "fig1.start", 4)
    assert chapter.seed_for(1, "fig1.start", 4) != chapter.seed_for(0, "fig1.start", 4)
    with pytest.raises(ValueError, match="unknown seed stream 'fig1.strat'"):
        chapter.seed_for(0, "fig1.strat")


def test_result_fmt_uses_the_accuracy_and_digits():
    @dataclass(frozen=True, kw_only=True)
    class R(chapter.Result):
        x: dict

    r = R(x={"a": np.array([1.2341e-4, 2.0])}, accuracy=dict(x={"a": 1e-9}), digits=dict(x=3))
    assert r.fmt("x", "a", 0) == "0.000123"  # digits["x"] = 3
    assert r.fmt("x", "a", 0, digits=4) == "0.0001234"
    # a scalar accuracy applies to every entry; 1e-7 leaves 2 reliable digits of 1.23e-4
    assert R(x={"a": [1.2341e-4]}, accuracy=dict(x=1e-7)).fmt("x", "a", 0) == "0.00012"
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.x = {}


def test_every_chapter_experiment_is_registered():
    names = {n for exps in pages.CHAPTER_EXPERIMENTS.values() for n in exps}
    assert names <= set(chapter.REGISTRY), sorted(names - set(chapter.REGISTRY))
    for name, cls in chapter.REGISTRY.items():
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, name
        assert cls.__doc__ and all(f in cls.__doc__ for f in cls.names()), (name, cls.__doc__)


def test_overrides_that_no_experiment_knows_are_refused():
    with pytest.raises(ValueError, match="unknown settings \\['etta'\\]"):
        experiments.check_overrides({"etta": 0.2})
    assert experiments.check_overrides({"eta": 0.2}) == {"eta": 0.2}


def test_no_legacy_settings_left():
    assert not (ROOT / "tsode" / "book" / "_legacy.py").exists()
    for path in (ROOT / "tsode" / "book").glob("*.py"):
        assert "SimpleNamespace" not in path.read_text(), path.name


# ------------------------------------------------------------------------------------------
# notebook cells only read fields
# ------------------------------------------------------------------------------------------
#: arithmetic a cell may not do on results (formatting, indexing and loops are fine)
_ARITHMETIC = (ast.Div, ast.Sub, ast.Mult, ast.Pow)
_REDUCTIONS = {"min", "max", "sum", "abs", "mean"}


def _computations(source: str) -> list[str]:
    """Arithmetic (/, -, *, **) and reductions (min, max, sum, abs, mean) in a cell (len, sorted,
    range and formatting are structure, not computation)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.BinOp) and isinstance(node.op, _ARITHMETIC):
            found.append(ast.unparse(node))
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) \
                else ""
            if name in _REDUCTIONS:
                found.append(ast.unparse(node))
    return found


def test_the_cell_checker_finds_computations():
    assert _computations("glue('x', res.a / res.b)") == ["res.a / res.b"]
    assert _computations("glue('x', max(res.a))") == ["max(res.a)"]
    assert _computations("glue('x', claimed(res.a, '.2f'))") == []


@pytest.mark.parametrize("notebook", sorted(p.name for p in (ROOT / "book").glob("0*.ipynb")))
def test_glue_and_checked_cells_only_read_fields(notebook):
    cells = json.loads((ROOT / "book" / notebook).read_text())["cells"]
    bad = {}
    for i, cell in enumerate(cells):
        tags = set(cell["metadata"].get("tags", []))
        if cell["cell_type"] == "code" and tags & {"remove-cell", "nbval-check-output"} \
                and "injected-parameters" not in tags:
            found = _computations("".join(cell["source"]))
            if found:
                bad[i] = found
    assert not bad, bad
