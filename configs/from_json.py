"""A config written by a run (WORKDIR/config.json) as a config again: reproduces that run or a chain's stage.

python -m rlaif_jax.main --config=configs/from_json.py:/tmp/rlaif_tiny/rl/config.json --workdir=/tmp/rlaif_tiny/rl
"""

import json
import os

import ml_collections


def get_config(path: str = "") -> ml_collections.ConfigDict:
    """arg: the path of a config.json (lists come back as lists; every key keeps its value)."""
    if not path or not os.path.exists(path):
        raise FileNotFoundError(f"configs/from_json.py needs the path of a config.json; got {path!r}")
    with open(path, encoding="utf-8") as f:
        return ml_collections.ConfigDict(json.load(f))
