"""The Bento: serving/bentofile.yaml builds, with the lock file's versions pinned."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "serving" / "requirements.txt"
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;]+)")


def _pins() -> dict[str, str]:
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        m = _PIN.match(line)
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def test_serving_requirements_pin_the_installed_locked_versions():
    pins = _pins()
    for name in ("bentoml", "mlflow", "lightgbm", "numba", "pandas", "sqlalchemy", "fastapi"):
        assert name in pins, f"{name} is not pinned in {REQUIREMENTS.name}"
    # `make install` installs exactly uv.lock: a pin that differs means the file is stale
    stale = {n: (v, metadata.version(n)) for n, v in pins.items() if metadata.version(n) != v}
    assert not stale, f"regenerate with `make serving/requirements.txt`: {stale}"
    assert "pyspark" not in pins  # the service does not use Spark (456 MB)


def test_bento_builds_with_the_library_rules_and_reference_lines(tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path), "BENTOML_DO_NOT_TRACK": "true"}
    bentoml = str(Path(sys.executable).parent / "bentoml")
    proc = subprocess.run(
        [bentoml, "build", "-f", "serving/bentofile.yaml", "."],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (bento,) = [p for p in (tmp_path / "bentos" / "household_risk").iterdir() if p.is_dir()]
    src = bento / "src"
    assert (src / "serving" / "service.py").exists()
    lib = src / "src" / "riskml"
    assert (lib / "service" / "bento.py").exists()
    assert (lib / "policy" / "rules" / "default.yaml").exists()
    assert (lib / "data" / "tables" / "lines.csv").exists()
    assert (lib / "service" / "pages" / "templates" / "worklist.html").exists()
    assert (lib / "service" / "pages" / "static" / "style.css").exists()
    assert not list(lib.rglob("__pycache__"))
    info = yaml.safe_load((bento / "bento.yaml").read_text())
    assert info["service"] == "serving.service:HouseholdRisk"
    assert {"name": "PYTHONPATH", "value": "src", "stage": "all"} in info["envs"]
    routes = {r["route"] for r in info["schema"]["routes"]}
    assert "/score" in routes
    built = (bento / "env" / "python" / "requirements.txt").read_text()
    assert f"bentoml=={metadata.version('bentoml')}" in built
