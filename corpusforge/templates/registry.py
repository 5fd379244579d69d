"""Where templates come from (filled in by the templates issue)."""
from pathlib import Path


def builtin_pack_paths() -> list[Path]:
    here = Path(__file__).resolve().parent.parent
    shipped = here / "_packs"
    return [shipped if shipped.is_dir() else here.parent / "templates"]
