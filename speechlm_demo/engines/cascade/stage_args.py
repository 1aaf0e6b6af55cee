"""A stage's catalogue arguments, checked against the annotations of its own class's ``__init__``.

Each stage class (an ASR, LLM or TTS kind) annotates its keyword parameters with their type and range
(``read_timeout: Seconds = 30.0``, ``beam_size: Annotated[int, Field(ge=1)] = 1``); :func:`arguments_model`
turns that signature into a pydantic model, so the catalogue (:mod:`.settings`) and the class itself check
the very same thing and each argument is defined once: a class decorated with :func:`stage_kind` checks its
arguments whenever it is built, by :func:`build_stage` from a catalogue mapping or directly. What the
annotations cannot say (a combination of arguments) a class says in a static ``check_arguments(arguments)``
that raises ValueError. Validation is
strict: YAML's ``yes`` or a quoted ``"5"`` is not a number (a whole number is a float, though:
``first_byte_timeout: 60`` becomes 60.0).
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_core import InitErrorDetails, PydanticCustomError

from ..base import EngineError

FIXED = frozenset({"device"})  # arguments the engine passes itself, not the catalogue

Seconds = Annotated[float, Field(gt=0, description="seconds, > 0")]
Temperature = Annotated[float, Field(ge=0, description="0: greedy")]
T = TypeVar("T")


@functools.cache
def arguments_model(cls: type) -> type[BaseModel]:
    """A pydantic model of the keyword arguments ``cls(...)`` takes from a catalogue: each parameter's
    annotation (with its ``Field`` constraints) and default, less those in :data:`FIXED`."""
    hints = typing.get_type_hints(cls.__init__, include_extras=True)  # type: ignore[misc]
    fields: dict[str, Any] = {}
    for name, parameter in inspect.signature(cls).parameters.items():
        if name in FIXED or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[name] = (hints.get(name, Any), default)
    config = ConfigDict(extra="forbid", strict=True)
    return create_model(f"{cls.__name__}Arguments", __config__=config, **fields)  # type: ignore[call-overload]


def checked_arguments(stage: str, kind: str, cls: type, config: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments of ``config`` (less ``kind``) validated and coerced as ``cls`` declares them, in their order.

    A wrong one raises :class:`ValidationError`, each error located at its argument (``read_timeout``) and
    naming the stage and kind (``Input should be greater than 0 (llm kind openai)``); raised in a settings
    validator, pydantic puts the field in front (``llm.read_timeout``).
    """
    arguments = {key: value for key, value in config.items() if key != "kind"}
    model = arguments_model(cls)
    where = f"{stage} kind {kind}"
    try:
        checked = model.model_validate(arguments)
    except ValidationError as exc:
        known = ", ".join(sorted(model.model_fields))
        details = [_named(error, where, known) for error in exc.errors()]
        raise ValidationError.from_exception_data(exc.title, details) from None
    check = getattr(cls, "check_arguments", None)
    if check is not None:
        try:
            check(checked)
        except ValueError as exc:
            raise ValidationError.from_exception_data(model.__name__, [_detail((), f"{exc} ({where})", arguments)]) from None
    return {key: getattr(checked, key) for key in arguments}


def _named(error: Any, where: str, known: str) -> InitErrorDetails:
    if error["type"] == "extra_forbidden":
        return _detail(error["loc"], f"not an argument of {where} (known: {known})", error["input"])
    given = error["input"]
    if error["type"] == "missing":  # its input is the whole mapping
        return _detail(error["loc"], f"{error['msg']} ({where})", given)
    return _detail(error["loc"], f"{error['msg']}, not {given!r} ({type(given).__name__}) ({where})", given)


def _detail(loc: tuple[int | str, ...], reason: str, value: Any) -> InitErrorDetails:
    return {"type": PydanticCustomError("stage_argument", "{reason}", {"reason": reason}), "loc": loc, "input": value}


def _engine_error(stage: str, exc: ValidationError) -> EngineError:
    """``exc`` as one :class:`EngineError` naming each wrong argument by stage (``llm.read_timeout: ...``)."""
    problems = [f"{'.'.join(str(p) for p in (stage, *e['loc']))}: {e['msg']}" for e in exc.errors()]
    return EngineError("; ".join(problems))


def stage_kind(stage: str, kind: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: ``cls`` is the ``kind`` of ``stage`` (see :func:`stage_kinds`), and building it, from a
    catalogue (:func:`build_stage`) or directly (``FasterWhisperASR(vocabulary="english", language="de")``),
    checks its arguments as the catalogue does (:func:`checked_arguments`, with the class's
    ``check_arguments``) and hands the coerced values to its ``__init__``. A wrong one raises
    :class:`EngineError` (``asr: vocabulary 'english' needs language 'en', not 'de' (asr kind faster-whisper)``).
    The arguments in :data:`FIXED` the class takes (``device``) are passed on unchecked."""

    def decorate(cls: type[T]) -> type[T]:
        init = cls.__init__
        signature = inspect.signature(init)
        parameters = list(signature.parameters.values())
        plain = {p.name for p in parameters[1:] if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)} - FIXED

        def check(given: Mapping[str, Any]) -> dict[str, Any]:
            try:
                return checked_arguments(stage, kind, cls, given)
            except ValidationError as exc:
                raise _engine_error(stage, exc) from None

        @functools.wraps(init)
        def checked_init(self: T, *args: Any, **kwargs: Any) -> None:
            unknown = {k: v for k, v in kwargs.items() if k not in plain | FIXED}
            if unknown:  # named as the catalogue names them, with those the kind takes
                known = {k: v for k, v in kwargs.items() if k not in unknown}
                given = signature.bind_partial(self, *args, **known).arguments
                check({**{k: v for k, v in given.items() if k in plain}, **unknown})
            bound = signature.bind(self, *args, **kwargs)  # Python's own TypeError for a wrong call (one given twice)
            bound.arguments.update(check({k: v for k, v in bound.arguments.items() if k in plain}))
            init(*bound.args, **bound.kwargs)

        cls.__init__ = checked_init  # type: ignore[method-assign]
        cls.kind = kind  # type: ignore[attr-defined]
        return cls

    return decorate


def stage_kinds(*classes: type) -> dict[str, type]:
    """A stage's kind -> class map of classes decorated with :func:`stage_kind`, in order (the first is the default)."""
    return {cls.kind: cls for cls in classes}  # type: ignore[attr-defined]


def build_stage(stage: str, kinds: Mapping[str, type], config: Mapping[str, Any], **fixed: Any) -> Any:
    """The stage ``config`` names: its ``kind`` (default: the first of ``kinds``) built from its arguments, checked
    as the class checks them (:func:`stage_kind`), plus those of ``fixed`` (e.g. ``device``) the kind's class takes."""
    kind = config.get("kind", next(iter(kinds)))
    if kind not in kinds:
        raise EngineError(f"unknown {stage.upper()} kind {kind!r}; known: {', '.join(kinds)}")
    cls = kinds[kind]
    if vars(cls).get("kind") != kind:  # a class not declared with @stage_kind (a subclass too) would be built unchecked
        raise TypeError(f"{cls.__name__} is not declared as the {stage} kind {kind!r}: decorate it with @stage_kind")
    arguments = {key: value for key, value in config.items() if key != "kind"}
    if FIXED & arguments.keys():  # the engine passes these, never a mapping: refused as the catalogue refuses them
        try:
            checked_arguments(stage, kind, cls, arguments)
        except ValidationError as exc:
            raise _engine_error(stage, exc) from None
    taken = {name: value for name, value in fixed.items() if name in inspect.signature(cls).parameters}
    return cls(**arguments, **taken)
