"""The suite file: schema, validation with one readable line per problem, and grid expansion.

A suite names datasets, models, a training recipe, attacks, detectors, unlearners, seeds, a device
and an output folder. Components are given as a name or as ``{name: ..., params: {...}}``; a list
given for a scalar parameter expands into a grid (one component per value, crossed over keys).
"""

from __future__ import annotations

import itertools
import json
import types
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from .components import KINDS, Component, Kind
from .exceptions import SuiteError
from .names import closest, did_you_mean
from .outputs import default_output
from .registry import Registry
from .training import TrainingRecipe

__all__ = [
    "Suite",
    "SuiteSettings",
    "ParsedSuite",
    "ComponentEntry",
    "ComponentSpec",
    "LISTS",
    "identity_params",
    "label_problems",
    "load_suite",
    "parse_suite",
    "suite_from_dict",
]

#: suite keys of earlier releases -> their names now, so an old suite gets told what to write
RENAMED_KEYS = {"clean_reference": "clean_model"}

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N, mps"


class ComponentEntry(BaseModel):
    """A component as written in the suite: a registry name and its parameters."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="registered name (see `deltabench plugins`)")
    params: dict[str, Any] = Field(default_factory=dict, description="parameters; lists expand into a grid")
    label: str | None = Field(
        None, description="name in the leaderboard (default: the registered name, see ComponentSpec.label)"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        if not isinstance(value, str | dict | ComponentEntry):
            raise ValueError("a component is a registered name or a mapping {name: ..., params: {...}}")
        return {"name": value} if isinstance(value, str) else value


class SuiteSettings(BaseModel):
    """Every key of a suite except its component lists, which :data:`Suite` adds from ``KINDS``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="suite name; the default output is leaderboards/<name>")
    seeds: list[int] = Field([0], min_length=1, description="one victim per seed")
    device: str = Field("auto", description=f"one of {DEVICE_CHOICES}")
    output: str | None = Field(None, description="folder of the leaderboard CSV")
    cache: str = Field(".deltabench/cache", description="folder of cached stage artifacts")
    training: TrainingRecipe = Field(default_factory=TrainingRecipe)
    affected_points: int = Field(1, ge=1, description="affected test inputs handed to detectors")
    references: bool = Field(
        True, description="add the reference components (the oracle detector, the none unlearner)"
    )
    clean_model: bool = Field(True, description="also train a clean model per seed, for comparison")
    threads: int = Field(
        1,
        ge=1,
        description="torch threads of every stage, whatever the executor; part of every cache key, "
        "since on a CPU the thread count changes float results",
    )
    stage_timeout: float | None = Field(
        None, gt=0, description="seconds a stage may run before its cells fail (default: no limit)"
    )
    deterministic: bool = Field(
        False,
        description="deterministic GPU arithmetic (no TF32, cuDNN search or nondeterministic kernels), "
        "so a rerun on the same GPU repeats every bit; CPU results are the same either way",
    )

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        ok = value in ("auto", "cpu", "mps", "cuda") or (value.startswith("cuda:") and value[5:].isdigit())
        if not ok:
            raise ValueError(f"unknown device '{value}' (allowed: {DEVICE_CHOICES})")
        return value

    @field_validator("name")
    @classmethod
    def _folder_name(cls, value: str) -> str:
        if not value.strip() or value in (".", "..") or any(c in "/\\" or ord(c) < 32 for c in value):
            raise ValueError(
                "the name is the leaderboard's folder (leaderboards/<name>): use a plain folder name, "
                "without '/', '\\' or '..' (set `output:` to write elsewhere)"
            )
        return value

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        twice = sorted({s for s in seeds if seeds.count(s) > 1})
        if twice:
            raise ValueError(
                f"seed {twice[0]} is listed twice (the same victims would run twice); list it once"
            )
        return seeds

    @property
    def output_dir(self) -> Path:
        return default_output(self.name, self.output)


def _component_field(kind: Kind) -> tuple[Any, Any]:
    if kind.many:
        return list[ComponentEntry], Field(
            min_length=1, description=f"{kind.plural} to cross (names or entries)"
        )
    default = DEFAULT_SINGLE[kind.name]
    return ComponentEntry, Field(
        default_factory=lambda: ComponentEntry(name=default),
        description=f"the {kind.name} (default {default})",
    )


#: the component a suite gets for a kind it may name only once, when it names none
DEFAULT_SINGLE = {"executor": "local"}

Suite = create_model(
    "Suite",
    __base__=SuiteSettings,
    __doc__="A benchmark suite (see ``suites/quick.yaml`` for a commented example).",
    **{kind.suite_key: _component_field(kind) for kind in KINDS.values()},
)


@dataclass(frozen=True)
class ComponentSpec:
    """One resolved component: registry kind and name, its full validated parameters, and its
    identity, all worked out once when the suite is parsed.

    ``validated`` is the component's ``Params`` instance the suite was checked with, so building
    the component does not validate the same values again; ``params`` is its JSON form, which
    rows use; ``key`` is what identifies it in every stage and cell (kind, name, version and the
    parameters less those that only locate its input), so nothing after parsing goes back to the
    registry to hash a component.
    """

    kind: str
    name: str
    params: dict[str, Any]
    display: str = field(default="", compare=False)
    origin: str = field(default="", compare=False)  # where the suite gave it, e.g. "attacks[0]"
    validated: BaseModel | None = field(default=None, compare=False, repr=False)
    #: kind, name, version and identity parameters (:func:`identity_params`): hashed into every
    #: stage identity and cell id
    key: dict[str, Any] = field(compare=False, repr=False, kw_only=True)
    #: the parameters as canonical JSON (sorted keys): the CSV's ``*_params`` columns
    params_json: str = field(init=False, compare=False, repr=False)
    #: the leaderboard's name for it: the suite's ``label`` or the registered name; when one name
    #: appears with several settings, each non-default one gets ``(key=value, ...)`` appended
    label: str = field(init=False, compare=False, repr=False)

    @classmethod
    def resolved(
        cls, component: type[Component], params: BaseModel | None, display: str = "", origin: str = ""
    ) -> ComponentSpec:
        """The spec of a registered ``component`` (the registry files it under its ``kind`` and
        ``name``) with its validated ``params`` (``None``: none given, as for an added reference
        component), identity included."""
        values = params.model_dump(mode="json") if params is not None else {}
        key = {
            "kind": component.kind,
            "name": component.name,
            "version": component.version,
            "params": identity_params(component.Params, values),
        }
        return cls(component.kind, component.name, values, display, origin, params, key=key)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params_json", json.dumps(self.params, sort_keys=True, default=str))
        object.__setattr__(self, "label", self.display or self.name)

    def __reduce__(self) -> tuple[Any, ...]:
        # ``validated`` stays behind: its class may be one a worker process cannot import (a
        # component defined in a test); the worker validates ``params`` when it builds the component
        return (_unpickled_spec, (self.kind, self.name, self.params, self.display, self.origin, self.key))


def _unpickled_spec(
    kind: str, name: str, params: dict[str, Any], display: str, origin: str, key: dict[str, Any]
) -> ComponentSpec:
    return ComponentSpec(kind, name, params, display, origin, key=key)


def identity_params(params_cls: type[BaseModel], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (resolved parameters of ``params_cls``) less those marked
    :data:`~deltabench.components.OUTSIDE_IDENTITY` (where or how the input is found)."""
    fields = params_cls.model_fields
    return {
        key: value
        for key, value in values.items()
        if key not in fields or (fields[key].json_schema_extra or {}).get("identity", True)
    }


@dataclass
class ParsedSuite:
    """A validated suite with every component resolved against the registry and grids expanded.

    ``components`` maps each kind to its specs; ``parsed.detectors`` (a suite key) reads one list,
    and ``parsed.executor`` the one spec of a kind named once.
    """

    suite: SuiteSettings
    components: dict[str, list[ComponentSpec]]
    source: str

    def __getattr__(self, key: str) -> Any:
        kind = _KIND_BY_SUITE_KEY.get(key)
        if kind is None or "components" not in self.__dict__:
            raise AttributeError(key)
        specs = self.components[kind.name]
        return specs if kind.many else specs[0]


_KIND_BY_SUITE_KEY = {kind.suite_key: kind for kind in KINDS.values()}
#: the suite keys that list components (``datasets:`` ... ``unlearners:``), from the one table of kinds
LISTS = tuple(kind.suite_key for kind in KINDS.values() if kind.many)


# --------------------------------------------------------------------------- error formatting


def _loc_text(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _unwrap(annotation: Any) -> Any:
    """The model class behind list[...] / X | None annotations, if any."""
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _unwrap(arg)
            if found is not None:
                return found
        return None
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _model_at(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        model = _unwrap(field.annotation) if field else None
    return model


def _describe(error: dict, root: type[BaseModel], prefix: tuple = ()) -> str:
    loc = tuple(p for p in error["loc"] if p not in ("function-after", "function-before"))
    where = _loc_text(prefix + loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = _model_at(root, loc[:-1])
        allowed = list(parent.model_fields) if parent else []
        if parent is not None and issubclass(parent, SuiteSettings) and loc[-1] in RENAMED_KEYS:
            return f"{where}: '{loc[-1]}' was renamed; write '{RENAMED_KEYS[loc[-1]]}' instead"
        text = f"{where}: unknown key '{loc[-1]}'{did_you_mean(str(loc[-1]), allowed)}"
        return text + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    if kind == "missing":
        return (
            f"{_loc_text(prefix + loc[:-1]) if loc[:-1] else '(top level)'}: missing required key '{loc[-1]}'"
        )
    msg = error["msg"].removeprefix("Value error, ")
    got = error.get("input")
    suffix = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
    return f"{where}: {msg}{suffix}"


def _validation_lines(exc: ValidationError, root: type[BaseModel], prefix: tuple = ()) -> list[str]:
    errors = exc.errors()
    # a misspelt required key is one mistake: its "did you mean" line says it, not a "missing" line too
    misspelt = set()
    for err in errors:
        if err["type"] == "extra_forbidden" and (parent := _model_at(root, err["loc"][:-1])):
            misspelt.add((err["loc"][:-1], closest(str(err["loc"][-1]), list(parent.model_fields))))
    return [
        _describe(err, root, prefix)
        for err in errors
        if not (err["type"] == "missing" and (err["loc"][:-1], err["loc"][-1]) in misspelt)
    ]


# --------------------------------------------------------------------------- components and grids


def _is_sequence_type(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_sequence_type(a) for a in typing.get_args(annotation) if a is not type(None))
    return origin in (list, tuple) or annotation in (list, tuple)


def _is_grid(value: Any, annotation: Any) -> bool:
    """A list is a grid of values, unless the parameter itself takes a list and this is one."""
    if not isinstance(value, list) or not value:
        return False
    if annotation is None or not _is_sequence_type(annotation):
        return True
    adapter = TypeAdapter(annotation)
    try:
        adapter.validate_python(value)
        return False
    except ValidationError:
        pass
    try:
        for item in value:
            adapter.validate_python(item)
    except ValidationError:
        return False
    return True


def _expand_grid(params: dict[str, Any], params_model: type[BaseModel]) -> list[dict[str, Any]]:
    axes: list[list[tuple[str, Any]]] = []
    for key, value in params.items():
        field = params_model.model_fields.get(key)
        grid = _is_grid(value, field.annotation if field else None)
        axes.append([(key, v) for v in value] if grid else [(key, value)])
    return [dict(combo) for combo in itertools.product(*axes)]


def _resolve(
    kind: str, key: str, entries: list[ComponentEntry], registry: Registry, problems: list[str]
) -> list[ComponentSpec]:
    specs: list[ComponentSpec] = []
    for i, entry in enumerate(entries):
        try:
            cls = registry.get(kind, entry.name)
        except Exception:
            names = registry.names(kind)
            text = f"{key}[{i}].name: unknown {kind} '{entry.name}'{did_you_mean(entry.name, names)}"
            problems.append(f"{text} (available: {', '.join(names)})")
            continue
        problems.extend(f"{key}[{i}].name: {line}" for line in cls.missing_requirements())
        for values in _expand_grid(entry.params, cls.Params):
            try:
                params = cls.Params(**values)
            except ValidationError as exc:
                problems.extend(_validation_lines(exc, cls.Params, (key, i, "params")))
                break
            spec = ComponentSpec.resolved(cls, params, entry.label or "", f"{key}[{i}]")
            if spec not in specs:
                specs.append(spec)
    return _label_variants(specs, registry)


def _label_variants(specs: list[ComponentSpec], registry: Registry) -> list[ComponentSpec]:
    """Tell apart specs that would share a leaderboard name by the parameters that set them apart."""
    labels = [(spec.label, spec.name) for spec in specs]  # one label on two components: see checks
    for base, name in {b for b in labels if labels.count(b) > 1}:
        members = [i for i, b in enumerate(labels) if b == (base, name)]
        group = [specs[i] for i in members]
        varying = [
            k for k in group[0].params if len({json.dumps(s.params.get(k), default=str) for s in group}) > 1
        ]
        try:
            defaults = registry.get(group[0].kind, group[0].name).Params().model_dump(mode="json")
        except Exception:  # a component with required parameters has no default setting
            defaults = {}

        def named(spec: ComponentSpec, keys: list[str], base: str = base) -> str:
            suffix = ", ".join(f"{k}={spec.params[k]}" for k in keys)
            return f"{base} ({suffix})" if suffix else base

        names = [
            named(s, [k for k in varying if k not in defaults or s.params[k] != defaults[k]]) for s in group
        ]
        if len(set(names)) < len(names):  # still ambiguous: name every varying key
            names = [named(s, varying) for s in group]
        for i, name in zip(members, names):
            specs[i] = replace(specs[i], display=name)
    return specs


def suite_from_dict(data: Any, registry: Registry, source: str = "<suite>") -> ParsedSuite:
    """Validate a suite given as a dict; raises :class:`SuiteError` listing every problem."""
    if data is None:
        raise SuiteError(
            [
                f"{source}: the suite is empty; it needs at least: name, datasets, models, attacks, "
                "detectors, unlearners"
            ]
        )
    if not isinstance(data, dict):
        raise SuiteError([f"{source}: the top level must be a mapping of keys, got {type(data).__name__}"])
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        raise SuiteError([f"{source}: {line}" for line in _validation_lines(exc, Suite)]) from None
    problems: list[str] = []
    components: dict[str, list[ComponentSpec]] = {}
    for kind in KINDS.values():
        value = getattr(suite, kind.suite_key)
        specs = _resolve(kind.name, kind.suite_key, value if kind.many else [value], registry, problems)
        if not kind.many:
            problems[:] = [line.replace(f"{kind.suite_key}[0]", kind.suite_key) for line in problems]
        elif suite.references:
            specs = _with_references(kind.name, specs, registry)
        components[kind.name] = specs
    problems += label_problems(suite, components)
    if problems:
        raise SuiteError([f"{source}: {line}" for line in problems])
    return ParsedSuite(suite, components, source)


def label_problems(suite: SuiteSettings, components: dict[str, list[ComponentSpec]]) -> list[str]:
    """Two components under one leaderboard label: their rows could not be told apart."""
    problems = []
    for key in LISTS:
        entries = getattr(suite, key)
        first: dict[str, int] = {}
        clashes = []
        for j, entry in enumerate(entries):
            base = entry.label or entry.name
            i = first.setdefault(base, j)
            if entries[i].name != entry.name:
                at = j if entry.label else i  # point at the label that was written
                other = i if at == j else j
                clashes.append(
                    f"{key}[{at}].label: '{base}' is also the leaderboard name of {key}[{other}] "
                    f"({entries[other].name}), so their rows would be mixed up; give each its own label"
                )
        problems += clashes
        if not clashes:  # a label may still meet a component the suite adds (`references: true`)
            problems += _final_label_clashes(key, components.get(_KIND_BY_SUITE_KEY[key].name, []))
    return problems


def _final_label_clashes(key: str, specs: list[ComponentSpec]) -> list[str]:
    problems = []
    seen: dict[str, ComponentSpec] = {}
    for spec in specs:
        other = seen.setdefault(spec.label, spec)
        if other is not spec:
            mine, theirs = (spec, other) if spec.origin else (other, spec)
            where = (
                f"{theirs.origin} ({theirs.name})"
                if theirs.origin
                else f"a reference component ({theirs.name}, added by `references: true`)"
            )
            problems.append(
                f"{mine.origin or key}.label: '{spec.label}' is also the leaderboard name of {where}; "
                "give it another label"
            )
    return problems


def _with_references(kind: str, specs: list[ComponentSpec], registry: Registry) -> list[ComponentSpec]:
    """The registered reference components of ``kind`` the suite does not list, in front of ``specs``."""
    listed = {spec.name for spec in specs}
    missing = [
        ComponentSpec.resolved(cls, None)
        for name in registry.names(kind)
        if (cls := registry.get(kind, name)).reference and name not in listed
    ]
    return missing + specs


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden on purpose
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, typing.Hashable):
                continue  # SafeLoader reports unhashable keys itself
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key '{key}' (its second value would silently replace the first); keep one",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def parse_suite(text: str, registry: Registry, source: str = "<suite>") -> ParsedSuite:
    """Validate suite YAML text."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SuiteError([f"{where}: invalid YAML: {problem}"]) from None
    return suite_from_dict(data, registry, source)


def load_suite(path: str | Path, registry: Registry) -> ParsedSuite:
    """Read and validate a suite file."""
    path = Path(path)
    if not path.is_file():
        raise SuiteError([f"{path}: no such suite file" + (" (it is a folder)" if path.is_dir() else "")])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fix = "; save it as UTF-8" if isinstance(exc, UnicodeDecodeError) else ""
        raise SuiteError([f"{path}: cannot read the file: {exc}{fix}"]) from None
    return parse_suite(text, registry, str(path))
