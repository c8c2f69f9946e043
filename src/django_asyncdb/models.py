"""Model.asave / adelete / arefresh_from_db: Django's own methods, run in the bridge
(an adelete() Django would do with one statement learns it: deletes.py).

Custom ``save()``/``delete()`` overrides run too, with their queries native.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.db import router
from django.db.models import Model

from . import bridge, deletes

__all__ = ["model_method"]


def _write_alias(instance: Model, kwargs: dict[str, Any]) -> str:
    return kwargs.get("using") or router.db_for_write(type(instance), instance=instance)


def _read_alias(instance: Model, kwargs: dict[str, Any]) -> str:
    return (
        kwargs.get("using")
        or instance._state.db
        or router.db_for_read(type(instance), instance=instance)
    )


def model_method(name: str, *, write: bool) -> Callable[..., Any]:
    """The native ``Model.a<name>``: ``Model.<name>`` run in the bridge."""
    alias_of = _write_alias if write else _read_alias
    doc = f"Native async twin of Model.{name}()."
    return bridge.twin(getattr(Model, f"a{name}"), name, alias_of, doc)


_SAVE_DEFAULTS = {
    "force_insert": False,
    "force_update": False,
    "using": None,
    "update_fields": None,
}
_asave = model_method("save", write=True)


@functools.wraps(Model.asave)
async def asave(self: Model, *args: Any, **kwargs: Any) -> Any:
    """Native async twin of Model.save()."""
    if args:
        # Checked (and warned about, pointing at the caller) as Django's asave() does.
        parse = getattr(self, "_parse_save_params", None)
        if parse is None:  # Django 6: keyword-only, as Django's asave()
            raise TypeError(
                f"Model.asave() takes 1 positional argument but {len(args) + 1} were given"
            )
        values = parse(*args, method_name="asave", **{**_SAVE_DEFAULTS, **kwargs})
        kwargs = dict(zip(_SAVE_DEFAULTS, values, strict=True))
    return await _asave(self, **kwargs)


METHODS = {
    "asave": asave,
    "adelete": deletes.native_model_adelete(model_method("delete", write=True), _write_alias),
    "arefresh_from_db": model_method("refresh_from_db", write=False),
}
