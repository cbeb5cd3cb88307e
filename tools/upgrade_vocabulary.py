"""Record vocabulary version 2 in a model saved with version 1 whose XP tokens were projected.

Vocabulary version 2 (`giantfm.vocab.VOCAB_VERSION`) marks that XP tokens are
projected coefficients; version-1 models are refused because the first ones
read raw coefficients. The models trained on projected tokens before the bump
-- ``giantfm-default-v1``, ``giantfm-default-v2`` and the runs of
``giantfm train`` from the same code -- have the very same token names and
meanings as version 2 (version 3 only appended ``p_rc``), and this rewrites
their ``config.json`` to version 2 (atomically, in place) after checking both;
giantfm then loads them as it loads any version-2 model. Usage::

    python tools/upgrade_vocabulary.py MODEL_DIR [MODEL_DIR ...]
"""
import json
import sys
from pathlib import Path

from giantfm import vocab
from giantfm.utils import atomic_write

# Models known to read projected XP tokens although they record vocabulary version 1.
PROJECTED = ("giantfm-default-v1", "giantfm-default-v2")
# The vocabulary whose names those models have: version 2's, which version 3 extends.
VERSION, NAMES = 2, list(vocab.NAMES[:vocab.token_id("p_rc")])


def upgrade(path):
    path = Path(path) / "config.json"
    config = json.loads(path.read_text())
    if config.get("vocab_version") in vocab.COMPATIBLE_VERSIONS:
        return f"{path.parent}: already version {config['vocab_version']}"
    if config.get("vocab_version") != 1 or config.get("vocab_names") != NAMES:
        raise SystemExit(f"{path.parent}: not a vocabulary-1 model with this vocabulary's names")
    metadata = config.get("metadata") or {}
    projected = metadata.get("name") in PROJECTED or "augmentation" in metadata
    if not projected:
        raise SystemExit(f"{path.parent}: nothing says its XP tokens were projected (name "
                         f"{metadata.get('name')!r}); retrain it with this giantfm")
    config["vocab_version"] = VERSION
    text = json.dumps(config, indent=1)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return f"{path.parent}: vocabulary version 1 -> {VERSION}"


if __name__ == "__main__":
    for folder in sys.argv[1:]:
        print(upgrade(folder))
