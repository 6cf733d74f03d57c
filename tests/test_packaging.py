"""pyproject.toml and environment.yml must list the same packages (pip and conda users)."""

from __future__ import annotations

import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as tomli (pip vendors it)
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        from pip._vendor import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
CONDA_TO_PIP = {"pytorch": "torch"}
NOT_PACKAGES = {"python", "pip"}


def normalise(requirement: str) -> str:
    """'Torch_Vision>=0.19' → 'torch-vision' (PEP 503 name, version and extras dropped)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, f"cannot read a package name from {requirement!r}"
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    return CONDA_TO_PIP.get(name, name)


def pyproject_names() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + project.get("optional-dependencies", {}).get("dev", [])
    return {normalise(d) for d in deps}


def conda_names(text: str) -> set[str]:
    """Top-level entries of ``dependencies:`` (the nested ``pip:`` list is skipped).

    A small reader for this file's plain layout, so the test needs no YAML library.
    """
    names, inside, indent = set(), False, None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not raw.startswith(" ") and not raw.startswith("-"):
            inside = line.strip() == "dependencies:"
            continue
        item = re.match(r"(\s*)-\s+(.*)", line)
        if not inside or not item:
            continue
        if indent is None:
            indent = len(item.group(1))
        if len(item.group(1)) != indent or item.group(2).rstrip().endswith(":"):
            continue  # a nested list or the "pip:" key
        name = normalise(item.group(2).strip().strip("'\""))
        if name not in NOT_PACKAGES:
            names.add(name)
    return names


def test_reader_understands_the_layout() -> None:
    text = "name: x\ndependencies:\n  - python>=3.10\n  - pytorch>=2.4\n  - Py_Yaml\n" \
           "  - pip:\n      - -e .\nchannels:\n  - conda-forge\n"
    assert conda_names(text) == {"torch", "py-yaml"}


def test_pyproject_and_environment_yml_list_the_same_packages() -> None:
    pip = pyproject_names()
    conda = conda_names((REPO / "environment.yml").read_text())
    assert pip, "no dependencies read from pyproject.toml"
    only_pip, only_conda = sorted(pip - conda), sorted(conda - pip)
    assert not only_pip and not only_conda, (
        f"only in pyproject.toml: {only_pip}; only in environment.yml: {only_conda}"
    )
