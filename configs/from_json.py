"""A config written by a run (WORKDIR/config.json) as a config again: reproduces that run or a chain's stage.

python -m rlaif_jax.main --config=configs/from_json.py:/tmp/rlaif_tiny/rl/config.json --workdir=/tmp/rlaif_tiny/rl
"""

import json

import ml_collections
from etils import epath


def get_config(path: str = "") -> ml_collections.ConfigDict:
    """arg: the path of a config.json (lists come back as lists; every key keeps its value)."""
    if not path or not epath.Path(path).is_file():  # a local path or a gs:// / s3:// URI
        raise FileNotFoundError(f"configs/from_json.py needs the path of a config.json; got {path!r}")
    return ml_collections.ConfigDict(json.loads(epath.Path(path).read_text(encoding="utf-8")))
