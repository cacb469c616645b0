"""services.common.lazy: a package's public names load on first use, once, and only those."""

from __future__ import annotations

import subprocess
import sys
import types
from collections.abc import Iterator

import pytest

from services.common.lazy import lazy_exports


@pytest.fixture
def package() -> Iterator[types.ModuleType]:
    module = types.ModuleType("lazy_demo")
    module.__getattr__, module.__dir__ = lazy_exports(  # type: ignore[method-assign]
        "lazy_demo",
        {"colorsys": ("colorsys", None), "to_hsv": ("colorsys", "rgb_to_hsv")},
    )
    sys.modules["lazy_demo"] = module
    yield module
    del sys.modules["lazy_demo"]


def test_a_listed_name_resolves_to_the_module_or_its_attribute(package) -> None:
    import colorsys

    assert package.colorsys is colorsys
    assert package.to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    assert "to_hsv" in vars(package)  # kept: the next read does not import again


def test_an_unknown_name_is_an_attribute_error_naming_the_package(package) -> None:
    with pytest.raises(AttributeError, match="module 'lazy_demo' has no attribute 'nope'"):
        _ = package.nope
    assert not hasattr(package, "nope")


def test_dir_lists_the_names_before_they_load(package) -> None:
    assert {"colorsys", "to_hsv"} <= set(dir(package))
    assert "to_hsv" not in vars(package)


@pytest.mark.parametrize(
    ("package_name", "name", "heavy"),
    [("services.identity", "sd_jwt", "jwcrypto"), ("services.credit", "demo_uscc", "pandas")],
)
def test_the_services_load_their_heavy_helpers_only_when_asked(package_name, name, heavy) -> None:
    script = (
        f"import sys, {package_name} as p\n"
        f"assert {heavy!r} not in sys.modules, 'loaded at import'\n"
        f"assert {name!r} in dir(p)\n"
        f"getattr(p, {name!r})\n"
        f"assert {heavy!r} in sys.modules, 'not loaded on use'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
