"""Frozen dataclasses, declared without compiling code: :func:`frozen`.

``@dataclass(frozen=True)`` writes a class's ``__init__``, ``__repr__``, ``__eq__``, ``__hash__``,
``__setattr__`` and ``__delattr__`` as source text and compiles each when the class is created:
about 0.2 ms a method, 1-6 ms a class, some 35 ms for the two dozen record classes a first load
imports -- more than the rest of fastvol's own import (issue 9). :func:`frozen` builds the
field table itself (:class:`dataclasses.Field` objects, defaults, ``__slots__``,
``__match_args__``; so ``dataclasses.fields``, ``replace`` and ``asdict`` work as before),
without ``dataclass``'s resolving of every annotation, and adds the methods as closures over
that table, made here once, compiled with this module.

The instances behave as those of ``@dataclass(frozen=True, ...)``: construction by keyword or
position, with defaults, default factories and ``__post_init__``; ``FrozenInstanceError`` on
assignment; equality and hash over the compared fields (``field(compare=False)`` left out);
the same repr; pickling (slotted classes too). The generic ``__init__`` loops over the fields,
5-20% slower per call than the compiled one: classes built once per file or per frame ask for
``compiled_init``. Differences: ``__dataclass_params__`` reads ``repr=False, eq=False`` (and
without ``compiled_init``, ``init=False, frozen=False``; nothing here reads it, and none of
these classes is subclassed).
"""

from __future__ import annotations

import dataclasses
import inspect
import re  # dataclasses imports it: no cost here
from collections.abc import Callable
from dataclasses import MISSING, FrozenInstanceError
from itertools import pairwise
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:  # only type checkers read it (typing has it from Python 3.11)

    def dataclass_transform(**_: Any) -> Callable[[Any], Any]:
        return lambda decorator: decorator


__all__ = ["frozen"]

T = TypeVar("T")


@overload
def frozen(cls: type[T], /) -> type[T]: ...
@overload
def frozen(
    *, slots: bool = False, eq: bool = True, compiled_init: bool = False
) -> Callable[[type[T]], type[T]]: ...
@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def frozen(
    cls: type[T] | None = None, /, *, slots: bool = False, eq: bool = True, compiled_init: bool = False
) -> Any:
    """``@dataclass(frozen=True, slots=slots, eq=eq)``, with no code compiled (see the module).

    Methods the class body defines itself are kept, as ``dataclass`` keeps them. With
    ``compiled_init``, ``dataclass`` writes and compiles ``__init__`` (with a ``__setattr__`` and
    ``__delattr__`` replaced here): half the saving at import, but construction as fast as
    Python goes (the generic ``__init__`` loops over the fields: 2-20% slower), for the classes
    built once per file or per frame.
    """

    def wrap(cls: type[T]) -> type[T]:
        own = set(cls.__dict__)
        explicit_hash = "__hash__" in own and not (cls.__dict__["__hash__"] is None and "__eq__" in own)
        if compiled_init:
            cls = dataclasses.dataclass(cls, frozen=True, repr=False, eq=False, slots=slots)  # type: ignore[call-overload]
        else:
            cls = _declare(cls, slots)
        if compiled_init:
            own.add("__init__")
        elif "__signature__" not in own:
            cls.__signature__ = _Signature()  # type: ignore[attr-defined]
        for name, method in _methods(cls, slots, eq).items():
            if name not in own or (name == "__hash__" and not explicit_hash):
                method.__qualname__ = f"{cls.__qualname__}.{name}"
                setattr(cls, name, method)
        return cls

    return wrap if cls is None else wrap(cls)


#: What ``dataclass(init=False, repr=False, eq=False)`` records of its arguments; one for all.
_PARAMS = dataclasses.dataclass(type("_Params", (), {"__doc__": "-"}),  # a doc: else inspect.signature
                                init=False, repr=False, eq=False).__dataclass_params__  # type: ignore[attr-defined]
_CLASSVAR = re.compile(r"\s*(?:typing\.)?ClassVar\b").match
_REFUSED = re.compile(r"\b(?:InitVar|KW_ONLY)\b").search


def _declare(cls: type[T], slots: bool) -> type[T]:
    """``dataclasses.dataclass(cls, init=False, repr=False, eq=False, slots=slots)`` for the
    declarations :func:`frozen` takes: the field table, ``__match_args__`` and ``__slots__``.

    ``dataclass`` resolves every string annotation against the module's names to find
    ``ClassVar`` and ``InitVar``, some 7 ms for the two dozen classes a first load imports;
    here a ``ClassVar`` is recognised by its name, and ``InitVar`` and ``KW_ONLY`` are refused.
    The fields are :class:`dataclasses.Field` objects made by :func:`dataclasses.field`, so
    ``fields``, ``replace``, ``asdict`` and ``is_dataclass`` read them as ``dataclass``'s.
    """
    fields: dict[str, dataclasses.Field[Any]] = {}
    for base in cls.__mro__[-1:0:-1]:  # inherited fields first, as dataclass orders them
        fields.update(getattr(base, "__dataclass_fields__", None) or {})
    own = cls.__dict__
    for name, annotation in own.get("__annotations__", {}).items():
        text = annotation if isinstance(annotation, str) else repr(annotation)
        if _CLASSVAR(text):
            continue
        if _REFUSED(text):
            raise TypeError(f"{cls.__name__}.{name}: frozen() does not take InitVar or KW_ONLY fields")
        default = own.get(name, MISSING)
        declared = isinstance(default, dataclasses.Field)
        f = default if declared else dataclasses.field(default=default)
        f.name, f.type = name, annotation
        f._field_type = dataclasses._FIELD  # type: ignore[attr-defined]  # what fields() keeps
        if f.kw_only is MISSING:  # type: ignore[comparison-overlap]
            f.kw_only = False
        if f.default is not MISSING and f.default.__class__.__hash__ is None:  # as dataclass
            raise ValueError(f"mutable default {type(f.default)} for field {name} is not allowed: "
                             "use default_factory")  # fmt: skip
        if declared:  # the class attribute: the plain default, or none (as dataclass leaves it)
            if f.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        fields[name] = f
    cls.__dataclass_fields__ = fields  # type: ignore[attr-defined]
    cls.__dataclass_params__ = _PARAMS  # type: ignore[attr-defined]
    if "__match_args__" not in own:
        cls.__match_args__ = tuple(fields)  # type: ignore[attr-defined,misc]
    if not slots:
        return cls
    body = dict(own)  # a new class with __slots__, as dataclass(slots=True) makes it
    inherited: set[str] = set()
    for base in cls.__mro__[1:-1]:
        names = getattr(base, "__slots__", ())
        inherited.update((names,) if isinstance(names, str) else names)
    body["__slots__"] = tuple(name for name in fields if name not in inherited)
    for name in (*fields, "__dict__", "__weakref__"):
        body.pop(name, None)
    slotted: Any = type(cls)(cls.__name__, cls.__bases__, body)  # type: ignore[misc]
    slotted.__qualname__ = cls.__qualname__
    return slotted  # type: ignore[no-any-return]


class _Signature:
    """``inspect.signature`` of a class with the generic ``__init__``, as ``dataclass``'s would
    read (help, notebooks): made from the fields when asked for, not at import."""

    def __get__(self, obj: Any, owner: type) -> inspect.Signature:
        p = inspect.Parameter
        return inspect.Signature(
            [p(f.name, p.POSITIONAL_OR_KEYWORD, annotation=f.type,
               default=_FACTORY if f.default_factory is not MISSING else p.empty if f.default is MISSING else f.default)
             for f in dataclasses.fields(owner)],  # type: ignore[arg-type]
            return_annotation=None,
        )  # fmt: skip


class _Factory:
    def __repr__(self) -> str:
        return "<factory>"  # as dataclass shows a default factory


_FACTORY = _Factory()


def _setter(cls: type, name: str, slots: bool) -> Callable[[Any, Any], None]:
    """Stores field ``name`` past the frozen ``__setattr__``: its slot's descriptor, or
    ``object.__setattr__`` (the instance dict)."""
    if slots:
        return cls.__dict__[name].__set__  # type: ignore[no-any-return]
    return lambda obj, value: object.__setattr__(obj, name, value)


def _key(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """The tuple of ``names``' values: what ``==`` and ``hash`` compare (as ``dataclass``)."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        get = attrgetter(names[0])
        return lambda obj: (get(obj),)
    return lambda obj: ()


def _methods(cls: type, slots: bool, eq: bool) -> dict[str, Callable[..., Any]]:
    """``__init__``, ``__repr__``, ``__setattr__``, ``__delattr__``, and with ``eq``
    ``__eq__`` and ``__hash__`` (slotted: ``__getstate__``, ``__setstate__``) of ``cls``."""
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    names = tuple(f.name for f in fields)
    for f in fields:
        if not f.init or f.kw_only:
            raise TypeError(f"{cls.__name__}.{f.name}: frozen() does not take init=False or kw_only fields")
    required = [f.default is MISSING and f.default_factory is MISSING for f in fields]
    if any(later and not earlier for earlier, later in pairwise(required)):
        raise TypeError(f"{cls.__name__}: a field without a default follows one with a default")
    pairs = tuple((name, _setter(cls, name, slots)) for name in names)
    defaults = {f.name: f.default for f in fields if f.default is not MISSING}
    factories = tuple((f.name, f.default_factory) for f in fields if f.default_factory is not MISSING)
    post_init = getattr(cls, "__post_init__", None)
    title = f"{cls.__qualname__}()"

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if args:
            if len(args) > len(names) or not kwargs.keys().isdisjoint(names[: len(args)]):
                raise TypeError(f"{title} takes {len(names)} arguments, each once")
            kwargs.update(zip(names, args))
        values = {**defaults, **kwargs}  # a dict merge: faster than a loop over the fields
        for name, factory in factories:
            if name not in values:
                values[name] = factory()
        try:
            for name, set_ in pairs:
                set_(self, values[name])
        except KeyError as missing:
            raise TypeError(f"{title} missing required argument {missing}") from None
        if len(values) != len(names):
            unknown = sorted(set(values) - set(names))
            raise TypeError(f"{title} got an unexpected keyword argument {unknown[0]!r}")
        if post_init is not None:
            post_init(self)

    shown = tuple(f.name for f in fields if f.repr)

    def __repr__(self: Any) -> str:
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in shown)
        return f"{type(self).__qualname__}({values})"

    def __setattr__(self: Any, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self: Any, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    methods: dict[str, Callable[..., Any]] = {
        "__init__": __init__, "__repr__": __repr__, "__setattr__": __setattr__, "__delattr__": __delattr__,
    }  # fmt: skip
    if eq:
        compared = _key(tuple(f.name for f in fields if f.compare))
        hashed = _key(tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash)))

        def __eq__(self: Any, other: Any) -> Any:
            if other.__class__ is self.__class__:
                return compared(self) == compared(other)
            return NotImplemented

        def __hash__(self: Any) -> int:
            return hash(hashed(self))

        methods.update(__eq__=__eq__, __hash__=__hash__)
    if slots:  # pickle would restore the slots with setattr, which the class refuses

        def __getstate__(self: Any) -> list[Any]:
            return [getattr(self, name) for name in names]

        def __setstate__(self: Any, state: list[Any]) -> None:
            for (_, set_), value in zip(pairs, state):
                set_(self, value)

        methods.update(__getstate__=__getstate__, __setstate__=__setstate__)
    return methods
