"""Checks of a parsed suite against the machine and the datasets, made before anything runs.

The suite's own consistency (schema, each component's parameters, leaderboard labels) is checked
while parsing (:mod:`.config`); what is left needs the file system, the hardware or the datasets:
an output or cache folder that cannot be created, a device this machine lacks, dataset files that
are missing, parameters a dataset cannot serve (a class index it does not have, a trigger outside
its images). Datasets answer from their metadata (:meth:`.DatasetSource.info`), so nothing is
loaded or trained. ``deltabench validate`` and ``deltabench run`` call :func:`load_checked_suite`;
a library caller runs :func:`check_suite`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .components import KINDS
from .config import LISTS, ParsedSuite, load_suite
from .exceptions import SuiteError
from .registry import Registry

__all__ = ["check_suite", "suite_problems", "load_checked_suite"]

def load_checked_suite(path: str | Path, registry: Registry) -> ParsedSuite:
    """Read, validate and check a suite file; raises :class:`SuiteError` with one line per problem."""
    parsed = load_suite(path, registry)
    check_suite(parsed, registry)
    return parsed


def check_suite(parsed: ParsedSuite, registry: Registry) -> None:
    """Raise :class:`SuiteError` if the suite would fail (or mislead) once running."""
    problems = suite_problems(parsed, registry)
    if problems:
        raise SuiteError([f"{parsed.source}: {line}" for line in problems])


def suite_problems(parsed: ParsedSuite, registry: Registry) -> list[str]:
    """Every problem as ``<key path>: <problem>; <fix>``, each once, in suite order."""
    found = [
        *device_problems(parsed.suite.device),
        *folder_problems(parsed),
        *dataset_problems(parsed, registry),
    ]
    return list(dict.fromkeys(found))


def device_problems(device: str) -> list[str]:
    """A device named in the suite that this machine does not have (``auto`` always works)."""
    fix = "use `device: auto` (the GPU when there is one) or `device: cpu`"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return [f"device: '{device}' but torch finds no CUDA GPU on this machine; {fix}"]
        index = int(device[5:]) if device[5:] else 0
        count = torch.cuda.device_count()
        if index >= count:
            return [
                f"device: '{device}' but this machine has {count} CUDA device(s) (cuda:0-{count - 1}); {fix}"
            ]
    if device == "mps" and not torch.backends.mps.is_available():
        return [f"device: 'mps' but torch finds no Apple GPU (MPS) on this machine; {fix}"]
    return []


def folder_problems(parsed: ParsedSuite) -> list[str]:
    """Output and cache folders that cannot be created or written to."""
    suite = parsed.suite
    problems = []
    for key, folder in (("output", suite.output_dir), ("cache", Path(suite.cache))):
        why = _unwritable(folder)
        if why:
            default = "" if key in suite.model_fields_set else " (the default)"
            problems.append(
                f"{key}: cannot write to '{folder}'{default}: {why}; set `{key}:` to a folder you can write"
            )
    return problems


def _unwritable(folder: Path) -> str | None:
    """Why ``folder`` cannot be created or written to, or None. Creates nothing."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"'{probe}' is a file, not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"'{probe}' is not writable"
    return None


def dataset_problems(parsed: ParsedSuite, registry: Registry) -> list[str]:
    """Missing dataset files, and parameters a dataset cannot serve, from each dataset's metadata."""
    problems = []
    components = [
        (spec, registry.get(spec.kind, spec.name).from_spec_params(spec.params, spec.validated))
        for key in LISTS
        if key != KINDS["dataset"].suite_key
        for spec in getattr(parsed, key)
    ]
    translate = parsed.suite.training.translate
    for dspec in parsed.datasets:
        info = registry.get("dataset", dspec.name).from_spec_params(dspec.params, dspec.validated).info()
        if info is None:  # a source without metadata: it is only checked when it loads
            continue
        if info.missing:
            problems.append(f"{dspec.origin}.params: {info.missing}")
        _, h, w = info.image_shape
        if translate >= min(h, w):
            problems.append(
                f"training.translate: shifts of {translate} px move the {h}x{w} images of {info.name} "
                f"out of the frame; use fewer pixels than {min(h, w)} (e.g. 1 on 8x8 digits, 4 on CIFAR)"
            )
        for spec, component in components:
            for problem in component.check_dataset(info):
                problems.append(f"{spec.origin or spec.kind}.params.{problem.key}: {problem.text}")
    return problems
