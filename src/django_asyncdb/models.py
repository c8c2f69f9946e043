"""Model.asave / adelete / arefresh_from_db: Django's own methods, run in the bridge.

Custom ``save()``/``delete()`` overrides run too, with their queries native.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.db import router
from django.db.models import Model

from . import bridge
from . import connections as seam

__all__ = ["model_method"]

_originals: dict[str, Any] = {}


def model_method(name: str, *, write: bool) -> Callable[..., Any]:
    """The native ``Model.a<name>``: ``Model.<name>`` run in the bridge."""
    original = getattr(Model, f"a{name}")
    _originals[f"a{name}"] = original

    @functools.wraps(original)  # keeps alters_data and the like
    async def method(self: Model, *args: Any, **kwargs: Any) -> Any:
        if name == "save" and args:
            # Checked (and warned about, pointing at the caller) as Django's asave() does.
            parse = getattr(self, "_parse_save_params", None)
            if parse is None:  # Django 6: keyword-only, as Django's asave()
                raise TypeError(
                    f"Model.asave() takes 1 positional argument but {len(args) + 1} were given"
                )
            values = parse(*args, method_name="asave", **{**_SAVE_DEFAULTS, **kwargs})
            kwargs, args = dict(zip(_SAVE_DEFAULTS, values, strict=True)), ()
        alias = kwargs.get("using") or (
            router.db_for_write(type(self), instance=self)
            if write
            else self._state.db or router.db_for_read(type(self), instance=self)
        )
        if not seam.is_native(alias):
            return await original(self, *args, **kwargs)
        await seam.prepare(alias)
        return await bridge.run(getattr(self, name), *args, **kwargs)

    method.__doc__ = f"Native async twin of Model.{name}()."
    return method


_SAVE_DEFAULTS = {
    "force_insert": False,
    "force_update": False,
    "using": None,
    "update_fields": None,
}


METHODS = {
    "asave": model_method("save", write=True),
    "adelete": model_method("delete", write=True),
    "arefresh_from_db": model_method("refresh_from_db", write=False),
}
