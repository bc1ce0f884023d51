"""The bundled, trained digits-tiny: its float checkpoint and its integer model file.

Kept free of torch so that the CLI can name them without loading it.
"""

from pathlib import Path

BUNDLED_CHECKPOINT = Path(__file__).resolve().parent / "digits-tiny.pt"
BUNDLED_MODEL = BUNDLED_CHECKPOINT.with_suffix(".hwq")
