"""The committed generated code matches what the .proto sources produce now."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "protos" / "crawlfleet" / "v1"


def load_generator() -> object:
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    load_generator().generate(tmp_path)  # type: ignore[attr-defined]
    fresh = {
        p.relative_to(tmp_path / "crawlfleet" / "v1"): p.read_bytes()
        for p in (tmp_path / "crawlfleet" / "v1").iterdir()
    }
    committed = {
        p.relative_to(GENERATED): p.read_bytes()
        for p in GENERATED.iterdir()
        if p.suffix in {".py", ".pyi"} and "_pb2" in p.name
    }
    assert set(fresh) == set(committed), "generated files differ: run python scripts/gen_protos.py"
    stale = sorted(str(name) for name in fresh if fresh[name] != committed[name])
    assert not stale, f"stale generated code {stale}: run python scripts/gen_protos.py"
