"""fastvol._frozen.frozen against its oracle, ``@dataclass(frozen=True, ...)`` of the standard library."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from dataclasses import dataclass, field
from typing import Any

import pytest

from fastvol._frozen import frozen


def _declare(decorator: Any, name: str) -> Any:
    """The same record class under ``decorator``, importable by pickle as ``name`` of this module."""

    class Record:
        """A record with every kind of field the package declares."""

        path: str
        slot: int
        source: Any = field(compare=False, repr=False)
        offsets: tuple[int, ...] | None = None
        weight: float = 1.0
        meta: dict[str, Any] = field(default_factory=dict, compare=False)
        keyed: str = field(default="k", hash=False)

        def __post_init__(self) -> None:
            object.__setattr__(self, "weight", float(self.weight))

        @property
        def label(self) -> str:
            return f"{self.path}#{self.slot}"

    Record.__qualname__ = Record.__name__ = name
    cls = decorator(Record)
    globals()[name] = cls
    return cls


KINDS = {"slots": {"slots": True}, "dict": {}, "no-eq": {"eq": False}, "compiled-init": {"slots": True}}
PAIRS = {kind: (_declare(dataclass(frozen=True, **kw), f"Stdlib_{kind.replace('-', '_')}"),
                _declare(frozen(**kw, compiled_init=kind == "compiled-init"), f"Frozen_{kind.replace('-', '_')}"))
         for kind, kw in KINDS.items()}  # fmt: skip
CALLS = [
    ((), {"path": "a", "slot": 1, "source": None}),
    (("b", 2, ["source"]), {"weight": 3}),
    (("c", 3, None, (1, 2)), {"meta": {"x": 1}, "keyed": "z"}),
    (("d", 4, "src", None, 2.5, {}, "q"), {}),
]
BAD_CALLS = [
    ((), {"path": "a", "slot": 1}),  # source missing
    ((), {"path": "a", "slot": 1, "source": None, "colour": 3}),  # unknown
    (("a",), {"path": "a", "slot": 1, "source": None}),  # path twice
    (("a", 1, None, None, 1.0, {}, "k", "extra"), {}),  # too many
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("call", range(len(CALLS)))
def test_instances_behave_as_the_stdlib_dataclass(kind, call):
    stdlib, ours = PAIRS[kind]
    args, kwargs = CALLS[call]
    a, b = stdlib(*args, **kwargs), ours(*args, **kwargs)
    assert [getattr(a, f.name) for f in dataclasses.fields(a)] == [getattr(b, f.name) for f in dataclasses.fields(b)]
    assert [(f.name, f.compare, f.repr) for f in dataclasses.fields(a)] == \
        [(f.name, f.compare, f.repr) for f in dataclasses.fields(b)]  # fmt: skip
    assert repr(b) == repr(a).replace("Stdlib_", "Frozen_")
    assert b.label == a.label and b.weight == a.weight and isinstance(b.weight, float)
    assert dataclasses.asdict(b) == dataclasses.asdict(a)
    twin, other = ours(*args, **kwargs), dataclasses.replace(b, slot=b.slot + 1)
    assert (b == twin) is (a == stdlib(*args, **kwargs))  # no-eq: identity only, as the stdlib
    assert b != other and other.slot == b.slot + 1 and other.path == b.path
    assert (b == dataclasses.replace(b, source="elsewhere", meta={"y": 2})) is (kind != "no-eq")
    if kind == "no-eq":
        assert hash(b) != hash(twin)
    else:
        assert hash(b) == hash(twin) == hash(dataclasses.replace(b, keyed="other", source=3))
    for name, value in (("slot", 9), ("colour", 1)):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(b, name, value)
    with pytest.raises(dataclasses.FrozenInstanceError):
        del b.path
    assert hasattr(b, "__dict__") is hasattr(a, "__dict__")
    assert str(inspect.signature(ours)) == str(inspect.signature(stdlib))


@pytest.mark.parametrize("kind", KINDS)
def test_pickle_and_copy_round_trip(kind):
    _, ours = PAIRS[kind]
    b = ours("a", 1, ("bytes", 3), (4, 5), meta={"k": [1]})
    for clone in (pickle.loads(pickle.dumps(b, protocol)) for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1)):
        assert type(clone) is ours
        assert dataclasses.astuple(clone) == dataclasses.astuple(b)
    assert dataclasses.astuple(copy.deepcopy(b)) == dataclasses.astuple(copy.copy(b)) == dataclasses.astuple(b)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("call", range(len(BAD_CALLS)))
def test_bad_calls_raise_type_error_as_the_stdlib(kind, call):
    stdlib, ours = PAIRS[kind]
    args, kwargs = BAD_CALLS[call]
    with pytest.raises(TypeError):
        stdlib(*args, **dict(kwargs))
    with pytest.raises(TypeError, match=r"Frozen_\w+"):
        ours(*args, **dict(kwargs))


def test_methods_of_the_class_body_are_kept():
    @frozen
    class Explicit:
        """``__hash__`` and ``__repr__`` of its own, the generated ``__eq__``."""

        a: int
        b: int = 0

        def __hash__(self) -> int:
            return 7

        def __repr__(self) -> str:
            return "explicit"

    assert hash(Explicit(1)) == 7 and repr(Explicit(1)) == "explicit"
    assert Explicit(1, 2) == Explicit(1, 2) != Explicit(1, 3)


def test_declarations_dataclass_would_refuse_are_refused():
    with pytest.raises(TypeError, match="follows"):

        @frozen
        class Unordered:
            a: int = 0
            b: int

    with pytest.raises(TypeError, match="init=False"):

        @frozen
        class Uninitialised:
            a: int = field(default=0, init=False)
