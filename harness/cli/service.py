"""The service commands: `harness serve`, `worker`, `tokens`, and the client side `submit`, `jobs`,
`job`, `cancel`. FastAPI, uvicorn and httpx are imported only when one of them runs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from harness.cli.render import DbOption, JsonOption, console, literal, print_json, print_table, say

tokens_app = typer.Typer(no_args_is_help=True, help="API tokens of the service (only their hashes are stored).")
ServerOption = typer.Option(None, "--server", envvar="HARNESS_SERVER",
                            help="Service URL (default http://127.0.0.1:8008). The token comes from $HARNESS_TOKEN.")


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for chatty in ("httpx", "httpx2", "openai"):  # a line per model call would bury the job lines
        logging.getLogger(chatty).setLevel(logging.WARNING)


def serve(db: Path = DbOption,
          host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0: every one)."),
          port: int = typer.Option(8008, "--port"),
          workers: int = typer.Option(1, "--workers", min=0,
                                      help="Worker processes to start (0: run `harness worker` yourself)."),
          data_root: List[Path] = typer.Option([], "--data-root",
                                               help="A folder submitted suites may read files under (repeatable)."),
          public_reads: bool = typer.Option(False, "--public-reads", help="Let read endpoints answer without a token."),
          lease_s: float = typer.Option(30.0, "--lease-s",
                                        help="A job whose worker stops renewing for this long is re-queued."),
          max_body: int = typer.Option(1 << 20, "--max-body-bytes", help="Largest request body accepted."),
          poll_s: float = typer.Option(1.0, "--poll-s",
                                       help="How often idle workers look for jobs submitted elsewhere."),
          executor: Optional[str] = typer.Option(None, "--executor",
                                                 help="local or ray: where the workers' jobs run (overrides suites)."),
          ray_address: Optional[str] = typer.Option(None, "--ray-address",
                                                    help="Ray cluster host:port for the workers' jobs (implies ray).")
          ) -> None:
    """Run the evaluation service: HTTP API (docs at /docs) plus worker processes over one store."""
    from harness.service import require_service_extra
    from harness.service.security import Settings
    from harness.service.serve import serve as run_service

    from harness.executors import check_kind

    require_service_extra()
    check_kind(executor)
    _logging()
    settings = Settings(db=db, data_roots=data_root, public_reads=public_reads, max_body_bytes=max_body,
                        lease_s=lease_s)
    run_service(settings, host, port, workers, poll_s, executor=executor, ray_address=ray_address)


def worker(db: Path = DbOption,
           lease_s: float = typer.Option(30.0, "--lease-s", help="Lease length; renewed every third of it."),
           poll_s: float = typer.Option(1.0, "--poll-s", help="Seconds between looks at an empty queue."),
           once: bool = typer.Option(False, "--once", help="Exit when the queue is empty."),
           parent_pid: Optional[int] = typer.Option(None, "--parent-pid", hidden=True),
           executor: Optional[str] = typer.Option(None, "--executor",
                                                  help="local or ray: where this worker's jobs run (overrides suites)."),
           ray_address: Optional[str] = typer.Option(None, "--ray-address",
                                                     help="Ray cluster host:port for this worker's jobs (implies ray).")
           ) -> None:
    """Run queued jobs of a store, one at a time (serve starts these; start more on other GPUs/hosts)."""
    from harness.executors import check_kind
    from harness.service.worker import Worker

    _logging()
    check_kind(executor)
    w = Worker(db, lease_s=lease_s, poll_s=poll_s, parent_pid=parent_pid, executor=executor, ray_address=ray_address)
    w.install_signals()
    w.serve_forever(once=once)


@tokens_app.command("create")
def tokens_create(name: str = typer.Argument(..., help="Who the token is for (shown as the jobs' submitter)."),
                  db: Path = DbOption) -> None:
    """Create a token and print it once: only its sha256 is stored."""
    from harness.api import open_store
    from harness.store.jobs import create_token

    token = create_token(open_store(db), name)
    console.print(literal(token))
    say(("store it now (e.g. export HARNESS_TOKEN=...): it cannot be shown again", "dim"), soft_wrap=True)


@tokens_app.command("list")
def tokens_list(db: Path = DbOption) -> None:
    """Token names, when they were created and revoked (never the tokens)."""
    from harness.api import open_store
    from harness.store.jobs import list_tokens

    table = Table(title=literal(f"tokens in {db}"))
    for col in ("name", "created", "revoked"):
        table.add_column(col)
    for row in list_tokens(open_store(db, must_exist=True)):
        table.add_row(literal(row["name"]), str(row["created_at"])[:19], str(row["revoked_at"] or "")[:19])
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(name: str = typer.Argument(...), db: Path = DbOption) -> None:
    """Revoke every live token of NAME; requests with them get 403 from then on."""
    from harness.api import open_store
    from harness.errors import HarnessError
    from harness.store.jobs import revoke_token

    n = revoke_token(open_store(db, must_exist=True), name)
    if not n:
        raise HarnessError(f"{db}: no live token named '{name}': see `harness tokens list --db {db}`")
    say(f"revoked {n} token(s) of {name}")


def submit(suite: str = typer.Argument(..., help="Suite YAML file (sent as text) or a built-in/stored suite name."),
           server: Optional[str] = ServerOption,
           kind: str = typer.Option("run", "--kind", help="run, closed, ratings, judge-eval or train."),
           priority: int = typer.Option(0, "--priority", help="Higher runs first."),
           stages: Optional[str] = typer.Option(None, "--stages", help="run: comma-separated stages."),
           wait: bool = typer.Option(False, "--wait",
                                     help="Follow the job with a progress bar until it ends.")) -> None:
    """Submit a job to a running service and print its id.

    With --wait: follow it; exit 0 when it finished complete, 1 when it failed, was cancelled or
    left calls to retry."""
    from harness.service.client import Client

    extra = {"stages": [s.strip() for s in stages.split(",") if s.strip()]} if stages else {}
    with Client(server) as client:
        job_id = client.submit_suite(suite, kind=kind, priority=priority, **extra)
        console.print(literal(job_id))
        if wait:
            final = _follow(client, job_id)
            if final["state"] != "finished" or (final.get("result") or {}).get("complete") is False:
                raise typer.Exit(1)


def _follow(client, job_id: str) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bars: dict[str, object] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        def show(event: dict) -> None:
            if event["kind"] == "progress":
                if event["label"] not in bars:
                    bars[event["label"]] = progress.add_task(literal(event["label"]).plain, total=event["total"])
                progress.update(bars[event["label"]], completed=event["done"], total=event["total"])
            else:
                text = event["state"] if event["kind"] == "state" else f"{event['label']} done"
                progress.console.print(literal(f"{text}" + (f": {event['message']}" if event.get("message") else "")))
        client.wait(job_id, on_event=show)
    final = client.job(job_id)
    _print_job(final)
    return final


def jobs(server: Optional[str] = ServerOption, state: Optional[str] = typer.Option(None, "--state"),
         suite: Optional[str] = typer.Option(None, "--suite"),
         submitter: Optional[str] = typer.Option(None, "--submitter"),
         as_json: bool = JsonOption) -> None:
    """Jobs of the service, newest first."""
    from harness.service.client import Client

    with Client(server) as client:
        rows = client.jobs(state=state, suite=suite, submitter=submitter)
    if as_json:
        return print_json(rows)
    columns = [("id", "left")] + [(c, "right" if c in ("made", "cached") else "left") for c in (
        "kind", "suite", "state", "stage", "submitter", "submitted", "made", "cached", "error")]
    print_table("jobs", columns, [[("" if v is None else v) for v in (
        j["id"], j["kind"], j["suite"], j["state"], j["stage"], j["submitter"], (j["submitted_at"] or "")[:19],
        j["calls"]["made"], j["calls"]["cached"], j["error"])] for j in rows])


def job(job_id: str = typer.Argument(...), server: Optional[str] = ServerOption, as_json: bool = JsonOption) -> None:
    """One job: state, stage, progress, calls made and cached, error."""
    from harness.service.client import Client

    with Client(server) as client:
        found = client.job(job_id)
    if as_json:
        return print_json(found)
    _print_job(found)


def _print_job(j: dict) -> None:
    say(f"job {j['id']} · {j['kind']} {j['suite'] or ''} · {j['state']} · attempts {j['attempts']}")
    for label, bar in j["progress"].items():
        say(f"  {label}: {bar['done']}/{bar['total']}")
    if j["calls"]["made"] is not None:
        say(f"  calls: {j['calls']['made']} made, {j['calls']['cached']} from cache, {j['calls']['failed']} failed")
    if j["error"]:
        say(("  error: ", "red"), j["error"])


def cancel(job_id: str = typer.Argument(...), server: Optional[str] = ServerOption) -> None:
    """Cancel a job: a queued one at once, a running one at its next progress step."""
    from harness.service.client import Client

    with Client(server) as client:
        say(f"job {job_id}: {client.cancel(job_id)['state']}")
