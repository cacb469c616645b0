"""Road health has one error root, and its docstring draws every error the package defines."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import services.roadhealth
from services.roadhealth import errors
from services.roadhealth.errors import RoadHealthError


def _defined_errors() -> dict[str, type[BaseException]]:
    """Every exception class a module of services.roadhealth defines (not imports)."""
    found: dict[str, type[BaseException]] = {}
    prefix = services.roadhealth.__name__ + "."
    for info in pkgutil.walk_packages(services.roadhealth.__path__, prefix):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == info.name
            ):
                found[f"{info.name}.{name}"] = obj
    return found


def test_every_error_is_under_the_root_and_drawn() -> None:
    found = _defined_errors()
    assert len(found) > 15  # the walk saw the analytics and wire modules too
    outside = sorted(name for name, cls in found.items() if not issubclass(cls, RoadHealthError))
    assert outside == []
    drawn = errors.__doc__ or ""
    undrawn = sorted(name for name, cls in found.items() if cls.__name__ not in drawn)
    assert undrawn == []


def test_an_analytics_error_reaching_http_is_the_service_s_defect() -> None:
    from services.roadhealth.analytics.iri import ProfileInputError
    from services.roadhealth.wire import PayloadInvalid

    assert (ProfileInputError.status, ProfileInputError.code) == (500, "analytics_error")
    assert issubclass(ProfileInputError, ValueError)  # as it was before it joined the root
    invalid = PayloadInvalid("bad_seq", "seq must be an integer")
    assert (invalid.status, invalid.code, invalid.message) == (
        422,
        "bad_seq",
        "seq must be an integer",
    )
    assert str(invalid) == "seq must be an integer"
