"""Turn query results into plain values so sync and native results compare exactly."""

from django.db.models import Model


def snapshot(value, _path=()):
    """A comparable form of a result: model instances with their loaded fields and caches.

    Relation caches can point back at an instance on the path (a one-to-one caches both
    ways); such a back-reference is shown as (model, pk).
    """
    if isinstance(value, Model):
        if any(value is seen for seen in _path):
            return ("ref", type(value).__name__, value.pk)
        path = (*_path, value)
        fields = {
            key: snapshot(val, path)
            for key, val in value.__dict__.items()
            if key not in ("_state", "_prefetched_objects_cache")
        }
        prefetched = getattr(value, "_prefetched_objects_cache", {})
        # An unordered relation has no defined order (chunked prefetching differs).
        fields["prefetched"] = {
            key: (
                snapshot(list(qs._result_cache), path)
                if qs.ordered
                else sorted(snapshot(list(qs._result_cache), path)[1], key=repr)
            )
            for key, qs in prefetched.items()
        }
        cached = {key: snapshot(val, path) for key, val in value._state.fields_cache.items()}
        return (type(value).__name__, value._state.db, value._state.adding, fields, cached)
    if isinstance(value, dict):
        return {key: snapshot(val, _path) for key, val in value.items()}
    if isinstance(value, list | tuple):
        return (type(value).__name__, [snapshot(item, _path) for item in value])
    return (type(value).__name__, value)
