"""Exits 1 when the test install changed the version of a direct runtime dependency (setup.py) that the main job ran.

CI runs the README's main-job line in a fresh venv, then its test line in that same venv:
  python .ci/same_versions.py snapshot VENV_PYTHON FILE   # after the main job: the versions it ran with
  python .ci/same_versions.py compare FILE VENV_PYTHON    # after the test install: the versions the tests ran with
"""

import ast
import json
import re
import subprocess
import sys


def runtime_requirements(setup_path: str = "setup.py") -> list[str]:
    """Distribution names in setup.py's `install_requires`, plus jaxlib (jax's compiled half)."""
    tree = ast.parse(open(setup_path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "install_requires":
            names = [re.split(r"[<>=!~ ;\[]", item.value, maxsplit=1)[0] for item in node.value.elts]
            return [*names, "jaxlib"]
    raise SystemExit(f"{setup_path}: no install_requires")


def versions(python: str, names: list[str]) -> dict[str, str | None]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "def version(name):\n"
        "    try:\n        return m.version(name)\n"
        "    except m.PackageNotFoundError:\n        return None\n"
        "print(json.dumps({name: version(name) for name in sys.argv[1:]}))"
    )
    return json.loads(subprocess.check_output([python, "-c", code, *names], text=True))


def main() -> None:
    command, *args = sys.argv[1:]
    names = runtime_requirements()
    if command == "snapshot":
        python, path = args
        with open(path, "w") as f:
            json.dump(versions(python, names), f)
        return
    if command != "compare":
        raise SystemExit(f"unknown command {command!r}: expected snapshot or compare")
    path, python = args
    with open(path) as f:
        main_versions = json.load(f)
    test_versions = versions(python, names)
    for name in names:
        print(f"  {name:20s} main {main_versions.get(name)!s:14s} test {test_versions[name]!s}")
    different = [name for name in names if main_versions.get(name) != test_versions[name]]
    if different:
        raise SystemExit(f"the test install changed the main job's versions of: {', '.join(different)}")


if __name__ == "__main__":
    main()
