"""Settings kept as JSON in the agent's state table, read back value by value.

A damaged stored value (out of range, of a field a newer version added, unreadable JSON) falls
back to its default alone: it must not throw away the rest of the householder's settings.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (``X`` or ``X | None``), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None


def salvage(model: type[BaseModel], data: dict[str, Any], where: str = "") -> tuple[Any, list[str]]:
    """``model`` from stored ``data``, keeping every value that is still valid.

    A value out of range, or of a field a newer version added, falls back to its default
    alone (a nested model field by field); a rule across fields that fails drops the fewest
    values that make it hold. Returns the model and the dotted names that were reset.
    """
    known = {k: v for k, v in data.items() if k in model.model_fields}
    dropped = [f"{where}{k}" for k in data if k not in model.model_fields]
    for _ in range(len(known) + 2):
        try:
            return model.model_validate(known), dropped
        except ValidationError as exc:
            bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]} & set(known)
        if not bad:
            # A rule across fields: drop one value at a time, first the one that mends it.
            for key in list(known):
                trial = {k: v for k, v in known.items() if k != key}
                try:
                    model.model_validate(trial)
                except ValidationError:
                    continue
                bad = {key}
                break
            else:
                return model(), dropped + [f"{where}{k}" for k in known]
        for key in bad:
            sub = _submodel(model.model_fields[key].annotation)
            value = known[key]
            if sub is not None and isinstance(value, dict):
                fixed, lost = salvage(sub, value, f"{where}{key}.")
                if lost and fixed is not None:
                    known[key] = fixed.model_dump(mode="json")
                    dropped += lost
                    continue
            del known[key]
            dropped.append(f"{where}{key}")
    return model(), dropped


def load_stored(raw: str | None, model: type[M], damaged: Callable[[str], None]) -> M:
    """``model`` from the stored JSON ``raw`` (defaults when nothing is stored).

    ``damaged`` is told, in words, what could not be kept.
    """
    if not raw:
        return model()
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise TypeError("not an object")
    except (ValueError, TypeError):
        damaged("they could not be read, so all are back at their defaults")
        return model()
    settings, dropped = salvage(model, data)
    if dropped:
        damaged(f"these were reset to their defaults: {', '.join(sorted(dropped))}")
    assert isinstance(settings, model)
    return settings
