"""Suite validation: every bad file gives one readable line per problem and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from deltabench.cli import app
from deltabench.config import load_suite, parse_suite, suite_from_dict
from deltabench.exceptions import SuiteError
from deltabench.registry import default_registry

GOOD = {
    "name": "tiny",
    "datasets": ["digits"],
    "models": ["small-cnn"],
    "training": {"epochs": 1},
    "attacks": [{"name": "badnet", "params": {"budget": 0.5}}],
    "detectors": ["spectral"],
    "unlearners": ["eu"],
}


def _with(**changes) -> str:
    data = {**GOOD, **changes}
    return yaml.safe_dump({k: v for k, v in data.items() if v is not ...})


# (file text, a fragment the one error line must contain)
BAD_SUITES = {
    "empty file": ("", "the suite is empty"),
    "bad yaml": ("name: x\ndatasets: [digits\n", "invalid YAML"),
    "not a mapping": ("- just\n- a list\n", "top level must be a mapping"),
    "unknown top-level key": (
        _with(detectorz=["spectral"]),
        "unknown key 'detectorz'; did you mean 'detectors'?",
    ),
    "unknown plugin": (_with(detectors=["spectrl"]), "unknown detector 'spectrl'; did you mean 'spectral'?"),
    "unknown attack": (_with(attacks=["badnett"]), "unknown attack 'badnett'; did you mean 'badnet'?"),
    "wrong type": (_with(seeds="zero"), "seeds"),
    "missing field": (_with(models=...), "missing required key 'models'"),
    "unknown param": (
        _with(attacks=[{"name": "badnet", "params": {"budjet": 0.1}}]),
        "attacks[0].params.budjet: unknown key 'budjet'; did you mean 'budget'?",
    ),
    "param out of range": (
        _with(attacks=[{"name": "badnet", "params": {"budget": -1}}]),
        "attacks[0].params.budget",
    ),
    "bad training key": (
        _with(training={"epoch": 3}),
        "training.epoch: unknown key 'epoch'; did you mean 'epochs'?",
    ),
    "bad device": (_with(device="gpu"), "unknown device 'gpu'"),
    "empty list": (_with(detectors=[]), "detectors"),
    "unknown executor": (_with(executor="cluster"), "unknown executor 'cluster'"),
}


@pytest.mark.parametrize("case", sorted(BAD_SUITES))
def test_bad_suite_gives_one_line_per_problem_and_exit_2(case, tmp_path):
    text, fragment = BAD_SUITES[case]
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {path}"), lines[0]
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output


def test_missing_suite_file(tmp_path):
    result = CliRunner().invoke(app, ["run", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "no such suite file" in result.output


def test_console_script_exit_code_is_2_without_traceback(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text(_with(detectors=["spectrl"]))
    proc = subprocess.run(
        [sys.executable, "-m", "deltabench", "run", str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "did you mean 'spectral'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_several_problems_are_all_reported():
    text = _with(detectors=["spectrl"], unlearners=["euu"])
    with pytest.raises(SuiteError) as err:
        parse_suite(text, default_registry(), "s.yaml")
    assert len(err.value.problems) == 2


def test_list_parameters_expand_into_a_grid():
    text = _with(attacks=[{"name": "badnet", "params": {"budget": [0.2, 0.5], "target": [3, 5]}}])
    parsed = parse_suite(text, default_registry())
    assert sorted((a.params["budget"], a.params["target"]) for a in parsed.attacks) == [
        (0.2, 3), (0.2, 5), (0.5, 3), (0.5, 5)
    ]  # fmt: skip


def test_settings_of_one_component_get_distinct_leaderboard_labels():
    text = _with(
        attacks=[{"name": "badnet", "params": {"budget": [0.2, 0.5]}}],
        detectors=[
            "delta-influence",
            {"name": "delta-influence", "params": {"control": 8, "T": [10, 50]}},
            {"name": "spectral", "label": "spectral (eps 0.1)", "params": {"expected_poison_rate": 0.1}},
        ],
    )
    parsed = parse_suite(text, default_registry())
    # default settings keep the bare name; others name only what differs from the defaults
    assert [a.label for a in parsed.attacks] == ["badnet (budget=0.2)", "badnet"]
    assert [d.label for d in parsed.detectors] == [
        "oracle", "delta-influence", "delta-influence (T=10, control=8)", "delta-influence (control=8)",
        "spectral (eps 0.1)",
    ]  # fmt: skip
    assert (
        parsed.detectors[1]
        == parse_suite(_with(detectors=["delta-influence"]), default_registry()).detectors[1]
    )


def test_a_list_valued_parameter_is_not_mistaken_for_a_grid():
    pixels = [[-1, -1], [-2, -2]]
    parsed = parse_suite(
        _with(attacks=[{"name": "badnet", "params": {"pixels": pixels}}]), default_registry()
    )
    assert len(parsed.attacks) == 1
    assert parsed.attacks[0].params["pixels"] == pixels
    grid = parse_suite(
        _with(attacks=[{"name": "badnet", "params": {"pixels": [pixels, [[-1, -1]]]}}]), default_registry()
    )
    assert len(grid.attacks) == 2


def test_references_are_added_and_defaults_resolved():
    parsed = parse_suite(_with(), default_registry())
    assert [d.name for d in parsed.detectors] == ["oracle", "spectral"]
    assert [u.name for u in parsed.unlearners] == ["none", "eu"]
    assert parsed.attacks[0].params["source"] == 8  # defaults are filled in and recorded


def test_reference_components_come_from_the_class_attribute_not_from_names():
    from deltabench import Detection, Detector, hookimpl
    from deltabench.registry import load_registry

    class EveryPoint(Detector):
        """A plugin's own reference row: flags the whole training set."""

        name = "every-point"
        reference = True

        def detect(self, ctx):
            return Detection(list(range(len(ctx.train))))

    class Plugin:
        @staticmethod
        @hookimpl
        def register_detectors(register):
            register(EveryPoint)

    registry = load_registry(entry_points=False, extra_plugins=(Plugin,))
    parsed = parse_suite(_with(), registry)
    assert [d.name for d in parsed.detectors] == ["every-point", "oracle", "spectral"]
    assert [d.name for d in parse_suite(_with(references=False), registry).detectors] == ["spectral"]
    listed = parse_suite(_with(detectors=["spectral", "oracle"]), registry)
    assert [d.name for d in listed.detectors] == ["every-point", "spectral", "oracle"]


def test_component_keys_come_from_the_kinds_table():
    from deltabench.components import KINDS
    from deltabench.config import Suite
    from deltabench.hookspecs import HOOK_KINDS

    assert {k.suite_key for k in KINDS.values()} <= set(Suite.model_fields)
    assert set(HOOK_KINDS.values()) == set(KINDS)
    parsed = parse_suite(_with(executor={"name": "processes"}), default_registry())
    assert parsed.executor.name == "processes"
    assert parsed.components["executor"] == [parsed.executor]
    with pytest.raises(AttributeError):
        parsed.detector  # noqa: B018  (the kind's name is not a suite key)


@pytest.mark.parametrize("path", sorted(Path(__file__).parent.parent.joinpath("suites").glob("*.yaml")))
def test_shipped_suites_are_valid(path):
    load_suite(path, default_registry())


def test_a_component_is_built_from_the_params_the_suite_was_checked_with_and_workers_get_plain_params():
    import pickle

    registry = default_registry()
    parsed = parse_suite(_with(detectors=[{"name": "delta-influence", "params": {"n_tolerate": 3}}]), registry)
    (spec,) = [d for d in parsed.detectors if d.name == "delta-influence"]
    cls = registry.get("detector", "delta-influence")
    assert isinstance(spec.validated, cls.Params) and spec.validated.n_tolerate == 3
    assert cls.from_spec_params(spec.params, spec.validated).params is spec.validated  # not validated again
    assert cls.from_spec_params(spec.params).params == spec.validated  # validated from the JSON form
    # a worker process gets the JSON form only (the Params class may not be importable there)
    copy = pickle.loads(pickle.dumps(spec))
    assert copy == spec and copy.validated is None
    assert (copy.params_json, copy.label, copy.origin) == (spec.params_json, "delta-influence", "detectors[0]")
    assert '"n_tolerate": 3' in spec.params_json


def test_a_spec_carries_its_identity_from_the_parse_and_a_worker_gets_it_unchanged():
    """The identity every stage and cell hashes is worked out once, from the component's class:
    its version, and its parameters less those that only locate the input."""
    import pickle
    import types

    from deltabench import hookimpl
    from deltabench.components import Detector, locating_field
    from deltabench.registry import load_registry

    class Versioned(Detector):
        name = "versioned"
        version = "7"

        class Params(Detector.Params):
            th: float = 0.5
            where: str = locating_field("here", "a folder (locates the input)")

        def detect(self, ctx):  # pragma: no cover - never run
            raise AssertionError

    @hookimpl
    def register_detectors(register):
        register(Versioned)

    plugin = types.SimpleNamespace(register_detectors=register_detectors)
    registry = load_registry(entry_points=False, extra_plugins=(plugin,))
    data = yaml.safe_load(_with(detectors=[{"name": "versioned", "params": {"th": 0.25, "where": "/x"}}]))
    parsed = suite_from_dict(data, registry)
    oracle, spec = parsed.detectors
    assert spec.key == {"kind": "detector", "name": "versioned", "version": "7", "params": {"th": 0.25}}
    assert spec.params == {"th": 0.25, "where": "/x"}  # the row still records where
    assert oracle.key == {"kind": "detector", "name": "oracle", "version": oracle.key["version"], "params": {}}
    assert pickle.loads(pickle.dumps(spec)).key == spec.key
