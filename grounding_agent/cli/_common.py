"""Small helpers shared by the subcommands."""

from __future__ import annotations

import json
import sys
from typing import Any


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def fmt_s(seconds: float) -> str:
    """12.3 -> '12.30 s (0:12.30)'."""
    m, s = divmod(seconds, 60.0)
    h, m = divmod(int(m), 60)
    clock = f"{h}:{m:02d}:{s:05.2f}" if h else f"{m}:{s:05.2f}"
    return f"{seconds:.2f} s ({clock})"
