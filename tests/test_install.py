"""The install script hands pip's configured package sources to uv (uv does not read pip's configuration)."""

from __future__ import annotations

import importlib.util

from .conftest import ROOT

spec = importlib.util.spec_from_file_location("install", ROOT / "scripts" / "install.py")
install = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install)


def test_pip_sources_become_uv_variables_once_each_from_any_section():
    listed = "\n".join([":env:.find-links='/opt/wheels'", "global.cert='/etc/ssl/certs/ca-certificates.crt'",
                        "global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'",
                        "global.find-links='/opt/wheels'", "install.index-url='https://mirror.example/simple'"])
    env = install.uv_environment(listed)
    assert env["UV_FIND_LINKS"] == "/opt/wheels"
    assert env["UV_EXTRA_INDEX_URL"] == "file:///opt/pypi/simple file:///opt/pypi-more/simple"
    assert env["UV_INDEX_URL"] == "https://mirror.example/simple"
    assert env["UV_INDEX_STRATEGY"] == "unsafe-best-match"      # every index weighed, as pip weighs them


def test_no_pip_configuration_leaves_uv_on_its_defaults():
    env = install.uv_environment("")
    assert not {"UV_FIND_LINKS", "UV_EXTRA_INDEX_URL", "UV_INDEX_URL"} & set(env)
