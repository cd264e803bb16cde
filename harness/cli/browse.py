"""`harness app`: the Streamlit app on 127.0.0.1, as a subprocess of this same Python.

Streamlit is imported only by that subprocess (here only its presence is checked), so
`import harness` and `harness --help` stay free of it. (This module is not named `app`: it would
shadow the package's typer `app` as an attribute of `harness.cli`.)
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import typer

from harness.cli.render import ReadOnlyDbOption
from harness.errors import HarnessError, MissingExtraError

APP_MAIN = Path(__file__).resolve().parents[2] / "app" / "main.py"


def app_command(db: Path = ReadOnlyDbOption,
                port: int = typer.Option(8501, "--port", help="Port on 127.0.0.1.")) -> None:
    """Browse the store: leaderboard, pairwise, answers, judges, runs; annotate as a person."""
    if not Path(db).exists():  # a typo in --db: the one missing-store error, before Streamlit starts
        from harness.api import open_store

        open_store(db, must_exist=True)
    sys.exit(subprocess.call(streamlit_command(db, port), env=app_env(db)))


def streamlit_command(db: Path, port: int) -> list[str]:
    for package in ("streamlit", "altair"):
        if importlib.util.find_spec(package) is None:
            raise MissingExtraError("app", package)
    if not APP_MAIN.is_file():
        raise HarnessError(f"{APP_MAIN}: the app is not installed with this copy of the harness")
    return [sys.executable, "-m", "streamlit", "run", str(APP_MAIN),
            "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--server.runOnSave", "false", "--global.developmentMode", "false", "--client.toolbarMode", "minimal"]


def app_env(db: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["HARNESS_APP_DB"] = str(Path(db).resolve())
    env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    return env
