"""The store file tells the truth about itself: a newer schema is refused before anything is written,
a file that is not DuckDB says so, a read-only file or folder says so, only a real lock waits, and
readers open the file read-only, so every read command and the app work on a read-only store.

Real DuckDB files and the real CLI in subprocesses. Tests run as root here, and chmod does not stop
root, so "read-only" is made real: the folder is bind-mounted read-only in a private mount namespace
of the one child process (`unshare --mount`), and a single file is made immutable (`chattr +i`); for
a non-root user chmod is enough. Where none of that is permitted the test is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import api
from harness.errors import HarnessError
from harness.store import Store, migrations
from harness.store.queries import table_counts
from tests.app_store import build_store, synthetic_suite

REPO = Path(__file__).resolve().parents[1]
LATEST = max(v for v, _, _ in migrations())
RO_MOUNT = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'


def cli(*args: str, wrap: tuple[str, ...] = (), timeout: float = 120) -> subprocess.CompletedProcess:
    """`harness ARGS` in a real process (optionally inside `wrap`, e.g. a read-only mount)."""
    return subprocess.run([*wrap, sys.executable, "-m", "harness.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "COLUMNS": "200", "HF_HUB_OFFLINE": "1"})


def state(path: Path) -> tuple:
    """What a write would change: the file's bytes and mtime, and the folder's entries (a .wal)."""
    return (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns,
            sorted(p.name for p in path.parent.iterdir()))


def one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, (
        result.returncode, result.stderr)
    return lines[0]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A folder with store.duckdb (judged synthetic suite, its board stored, plus answers of a real
    `reference` model), synthetic.yaml and ref.yaml (a suite `harness run` can run without a model)."""
    folder = tmp_path_factory.mktemp("template")
    build_store(folder / "store.duckdb")
    suite = synthetic_suite(4, ("judge-x", "judge-y"), ("accuracy", "helpfulness"))
    (folder / "synthetic.yaml").write_text(suite.model_dump_json())
    (folder / "q.jsonl").write_text("".join(json.dumps({"id": f"q{i}", "category": "writing", "turns": [f"Say {i}"]})
                                            + "\n" for i in range(3)))
    (folder / "outputs.json").write_text(json.dumps([{"instruction": f"Say {i}", "output": f"{i}!"} for i in range(3)]))
    (folder / "ref.yaml").write_text(json.dumps({"name": "ref", "sets": [{"name": "mine", "path": str(folder / "q.jsonl")}],
                                                 "models": [{"name": "ref", "backend": "reference",
                                                             "model": str(folder / "outputs.json")}]}))
    api.run(folder / "ref.yaml", folder / "store.duckdb", stages=("generate",))
    return folder


@pytest.fixture
def folder(template, tmp_path) -> Path:
    """A private copy of the template folder (made world-readable for a non-root test user)."""
    copy = tmp_path / "data"
    shutil.copytree(template, copy)
    return copy


# --- item 5: a newer schema ------------------------------------------------------------------------
def _from_the_future(db: Path, version: int) -> None:
    with Store(db, migrate=False).write() as con:
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, f"{version}_future.sql"])


@pytest.mark.parametrize("command", [
    ["run", "{folder}/ref.yaml"], ["db", "info"], ["answers", "-m", "ref"], ["ratings", "{folder}/synthetic.yaml"],
    ["models"], ["closed", "samples", "-t", "arc_easy", "-m", "model-00"]], ids=lambda c: " ".join(c[:2]))
def test_a_store_from_a_newer_harness_is_refused_before_anything_is_written(folder, command):
    db = folder / "store.duckdb"
    _from_the_future(db, LATEST + 2)
    counts, before = table_counts(Store(db, migrate=False)), state(db)
    result = cli(*(part.format(folder=folder) for part in command), "--db", str(db))
    assert one_error_line(result) == (f"error: {db}: schema version {LATEST + 2} is newer than this harness knows "
                                      f"({LATEST}): upgrade alignment-harness, or use another --db")
    assert state(db) == before and table_counts(Store(db, migrate=False)) == counts


def test_opening_or_migrating_a_newer_store_in_python_raises_and_writes_nothing(folder):
    from harness.errors import SchemaTooNewError

    db = folder / "store.duckdb"
    _from_the_future(db, LATEST + 1)
    before = state(db)
    with pytest.raises(SchemaTooNewError, match=f"schema version {LATEST + 1} is newer .*\\({LATEST}\\)"):
        Store(db)
    with pytest.raises(SchemaTooNewError):
        Store(db, migrate=False).migrate()
    assert state(db) == before


# --- item 7: true messages -------------------------------------------------------------------------
@pytest.mark.parametrize("command", [["db", "info"], ["run", "{folder}/ref.yaml"], ["answers", "-m", "ref"]],
                         ids=lambda c: c[0])
def test_a_file_that_is_not_duckdb_says_so_at_once(folder, command):
    db = folder / "notes.duckdb"
    db.write_text("these are my notes, not a database\n" * 20)
    before = state(db)
    line = one_error_line(cli(*(part.format(folder=folder) for part in command), "--db", str(db)))
    assert line == (f"error: {db}: not a DuckDB database file: pass a harness store with --db, "
                    "or a new file name to create one")
    assert state(db) == before


def test_readers_open_read_only_so_they_run_beside_another_reader(folder):
    """DuckDB lets readers share a file but not a reader and a writer: with another process holding
    a read-only connection, a command that opens the file for writing would wait for the lock."""
    db = folder / "store.duckdb"
    before = state(db)
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True);"
                               " print('held', flush=True); sys.stdin.read()", str(db)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for command, shows in ((["db", "info"], "judgments"), (["answers", "-m", "ref"], "Say 1"),
                               (["models"], "model-03"),
                               (["ratings", str(folder / "synthetic.yaml"), "--no-save"], "leaderboard · synthetic")):
            # 20 s is well below the 30 s a writer waits for the lock before it gives up
            result = cli(*command, "--db", str(db), timeout=20)
            assert result.returncode == 0 and shows in result.stdout, (command, result.stderr)
        samples = one_error_line(cli("closed", "samples", "-t", "arc_easy", "-m", "model-00", "--db", str(db),
                                     timeout=20))
        assert "no closed-set samples for task 'arc_easy'" in samples  # the store answered: none stored
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert state(db) == before


@functools.cache
def read_only_mount() -> tuple[str, ...] | str:
    """The command prefix that runs a child with folder $0 mounted read-only in its own mount
    namespace, or why none works here."""
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f"ro-probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    why = "unshare is not installed"
    try:
        for unshare in (["unshare", "--mount"], ["unshare", "--user", "--map-root-user", "--mount"]):
            if shutil.which("unshare") is None:
                break
            prefix = (*unshare, "sh", "-c", RO_MOUNT)
            check = subprocess.run([*prefix, str(probe), sys.executable, "-c",
                                    "import os, sys; sys.exit(3 if os.access(sys.argv[1], os.W_OK) else 0)",
                                    str(probe)], capture_output=True, text=True)
            if check.returncode == 0:
                return prefix
            why = f"{' '.join(unshare)} cannot mount read-only here: {check.stderr.strip()[:200]}"
    finally:
        probe.rmdir()
    return why


def in_read_only(folder: Path) -> tuple[str, ...]:
    prefix = read_only_mount()
    if isinstance(prefix, str):
        pytest.skip(prefix)
    return (*prefix, str(folder))


def test_read_commands_work_on_a_read_only_folder_and_writers_say_it_is_read_only(folder):
    db = folder / "store.duckdb"
    wrap, before = in_read_only(folder), state(db)
    info = cli("db", "info", "--db", str(db), wrap=wrap)
    assert info.returncode == 0, info.stderr
    assert f"schema version {LATEST}" in info.stdout and "judgments" in info.stdout
    answers = cli("answers", "-m", "ref", "--db", str(db), wrap=wrap)
    assert answers.returncode == 0 and "Say 1" in answers.stdout and "1!" in answers.stdout, answers.stderr
    models = cli("models", "--db", str(db), wrap=wrap)
    assert models.returncode == 0 and "model-03" in models.stdout, models.stderr
    ratings = cli("ratings", str(folder / "synthetic.yaml"), "--db", str(db), wrap=wrap)
    assert ratings.returncode == 0, ratings.stderr
    assert "leaderboard · synthetic" in ratings.stdout and "model-03" in ratings.stdout
    notes = " ".join(ratings.stdout.split()).split("note: ")[1:]  # the note may wrap at the terminal's width
    assert len(notes) == 1 and "the board was not stored" in notes[0] and "read-only" in notes[0], ratings.stdout
    run = one_error_line(cli("run", str(folder / "ref.yaml"), "--db", str(db), wrap=wrap))
    assert run.startswith(f"error: {db}: cannot write: the file and its folder {folder} are read-only"), run
    assert "held by another process" not in run
    assert state(db) == before


def _older_store(db: Path) -> None:
    store = Store(db, migrate=False)
    with store.write() as con:
        con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
                    " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)")
        for version, name, sql in migrations()[:-1]:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])


def test_an_older_store_that_cannot_be_written_names_both_versions(folder):
    db = folder / "old.duckdb"
    _older_store(db)
    wrap, before = in_read_only(folder), state(db)
    line = one_error_line(cli("db", "info", "--db", str(db), wrap=wrap))
    assert line == (f"error: {db}: schema version {LATEST - 1} is older than this harness ({LATEST}) and the file "
                    "cannot be written to migrate it: copy it somewhere writable, or run a writer command "
                    "(harness run) on it once")
    assert state(db) == before
    info = cli("db", "info", "--db", str(db))  # writable again: the reader migrates it once
    assert info.returncode == 0 and f"schema version {LATEST}" in info.stdout, info.stderr


@contextlib.contextmanager
def read_only_file(path: Path):
    """`path` unwritable even for root: immutable (chattr +i); for another user chmod is enough."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        yield
        path.chmod(0o644)
        return
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True) if shutil.which("chattr") else None
    if made is None or made.returncode != 0:
        pytest.skip(f"cannot make a file read-only for root here: {made.stderr.strip() if made else 'no chattr'}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_file_is_read_and_a_write_says_the_file_is_read_only(folder):
    db = folder / "store.duckdb"
    before = state(db)
    with read_only_file(db):
        info = cli("db", "info", "--db", str(db))
        assert info.returncode == 0 and "judgments" in info.stdout, info.stderr
        line = one_error_line(cli("run", str(folder / "ref.yaml"), "--db", str(db)))
        assert line.startswith(f"error: {db}: cannot write: the file is read-only ("), line
        with pytest.raises(HarnessError, match="cannot write: the file is read-only"):
            with Store(db).write() as con:
                con.execute("DELETE FROM answers")
        assert state(db) == before


def test_the_app_browses_a_read_only_store_and_refuses_a_newer_one(folder, monkeypatch):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    db = folder / "store.duckdb"
    monkeypatch.setenv("HARNESS_APP_DB", str(db))
    before = state(db)
    with read_only_file(db):
        at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=60)
        at.session_state["f_suite"] = "synthetic"  # the judged suite (the latest run is ref's)
        at.run()
        # (a judge's reliability banner is a warning about the data, not a problem with the file)
        problems = [e.value for e in (*at.exception, *at.error, *at.warning) if "is not reliable" not in e.value]
        assert not problems, problems
        assert at.get("vega_lite_chart"), "the leaderboard drew nothing"
    assert state(db) == before
    _from_the_future(db, LATEST + 1)
    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=60)
    at.run()
    assert not at.exception and len(at.error) == 1
    assert f"schema version {LATEST + 1} is newer than this harness knows ({LATEST})" in at.error[0].value
