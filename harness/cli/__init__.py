"""Command line: each command parses its arguments, calls one function and renders the result.

The commands live in one module per group (run, read, judge_eval, closed, train, browse); shared
rendering in `render`. Nothing imported here loads torch, transformers, vllm, streamlit, lm_eval or
trl: the commands import what they need when they run.

User errors (HarnessError) print as one line and exit 2; anything else keeps its traceback.
"""

from __future__ import annotations

import os
import signal
import sys

import typer
from rich.console import Console

from harness.errors import HarnessError

# No model hub at run time unless the user opts in explicitly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from harness.cli import browse, judge_eval, read, run, train  # noqa: E402
from harness.cli import stats  # noqa: E402
from harness.cli import calibrate as calibrate_cli  # noqa: E402
from harness.cli.closed import closed_app  # noqa: E402
from harness.cli import service as service_cli  # noqa: E402
from harness.cli.render import line, literal  # noqa: E402
from harness.redact import redact  # noqa: E402

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Alignment evaluation harness: generate, judge, rate, train, browse.")


@app.callback()
def _options(verbose: bool = typer.Option(False, "--verbose", help="Show the progress bars, logs and warnings of "
                                          "third-party libraries (tqdm, datasets, TRL, lm-eval); same as "
                                          "HARNESS_VERBOSE=1.")) -> None:
    from harness import verbosity

    verbosity.apply(verbose)


app.command("run")(run.run)
app.command("ratings")(run.ratings)
app.command("judge-eval")(judge_eval.judge_eval)
app.command("calibrate")(calibrate_cli.calibrate)
app.command("models")(read.models)
app.command("sets")(read.sets)
app.command("answers")(read.answers)
app.command("lineage")(train.lineage)
app.command("app")(browse.app_command)
app.command("compare")(stats.compare)
app.command("how-sure")(stats.how_sure)
app.command("probe")(stats.probe)
app.add_typer(read.db_app, name="db")
app.add_typer(closed_app, name="closed")
app.add_typer(train.train_app, name="train")
for _name in ("serve", "worker", "submit", "jobs", "job", "cancel"):  # the service (harness/cli/service.py)
    app.command(_name)(getattr(service_cli, _name))
app.add_typer(service_cli.tokens_app, name="tokens")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM takes the same cleanup path as Ctrl-C (servers stopped, run marked)


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        app()
    except HarnessError as exc:
        # The message carries user and stored text (paths, names, values): printed literally, on one
        # line, with any secret value masked.
        Console(stderr=True).print(line(("error:", "red"), " ", literal(redact(str(exc)), one_line=True)), soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted: answers stored so far are kept; run again to resume")
        sys.exit(130)
