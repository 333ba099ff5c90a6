"""Exits 1 when two Python environments have different versions of a direct runtime dependency (setup.py).

python .ci/same_versions.py MAIN_VENV_PYTHON TEST_ENV_PYTHON
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
    main_python, test_python = sys.argv[1:3]
    names = runtime_requirements()
    main_versions, test_versions = versions(main_python, names), versions(test_python, names)
    for name in names:
        print(f"  {name:20s} main {main_versions[name]!s:14s} test {test_versions[name]!s}")
    different = [name for name in names if main_versions[name] != test_versions[name]]
    if different:
        raise SystemExit(f"the main-job and test installs resolved different versions of: {', '.join(different)}")


if __name__ == "__main__":
    main()
