"""tyro at one place: parse a command line into a command dataclass, with every mistake as one sentence.

tyro reports a parse error as a framed, many-line box on stderr and exits; users of `fluxrl` get one line
starting `fluxrl: error:` instead (STYLE lesson 11), so the box is captured here and boiled down to its first
statement. Help goes to stdout untouched and ends the parse with `HelpShown`.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from typing import Any, Sequence

import tyro

from fluxrl.core.config import ConfigError

# Markers every fluxrl command line is parsed with: options may follow their subcommand anywhere, and
# subcommand names carry no prefix of the field they belong to.
MARKERS = (tyro.conf.CascadeSubcommandArgs, tyro.conf.OmitSubcommandPrefixes)
# The noun for an unknown word after each command, for the error message.
WORD_AFTER = {"fluxrl": "command", "fluxrl train": "algorithm family", "fluxrl reproduce": "reproduction",
              "fluxrl train gflownet": "algorithm", "fluxrl train onpolicy": "algorithm"}
_RULE = re.compile(r"^[-─═]+$")


class HelpShown(Exception):
    """The command line asked for help, which has been printed."""


def parse(command_type: Any, args: Sequence[str], prog: str, default: Any = None) -> Any:
    """The command dataclass a command line describes (options not given taken from `default`, an instance, when
    given); HelpShown after --help, ConfigError for a mistake."""
    extra = {} if default is None else {"default": default}
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            return tyro.cli(command_type, args=list(args), prog=prog, config=MARKERS, **extra)
    except SystemExit as exit_:
        if exit_.code in (0, None):
            raise HelpShown() from None
    # Parsed again, as wide as it takes, so that no line of the report is wrapped.
    captured, columns = io.StringIO(), os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100000"
    try:
        with contextlib.redirect_stderr(captured), contextlib.suppress(SystemExit):
            tyro.cli(command_type, args=list(args), prog=prog, config=MARKERS, **extra)
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    raise ConfigError(one_line(captured.getvalue(), args, prog))


def one_line(report: str, args: Sequence[str] = (), prog: str = "fluxrl") -> str:
    """The first statement of a tyro error box, as one sentence naming what was wrong."""
    title, lines = _box(report)
    if not lines:
        return f"cannot parse the command line ({title or 'no details'})."
    available = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Available subcommands")),
                     "")
    if lines[0].startswith("Unrecognized or misplaced options"):
        entries = [re.match(r"^(\S+) \(applied to (.*)\)$", line) for line in lines[1:]]
        entries = [entry.groups() for entry in entries if entry]
        if entries:
            word, where = next(((w, p) for w, p in entries if w.startswith("-")), entries[0])
            return _unknown(word, where, available)
    if lines[0].startswith("Unrecognized options:"):
        word = lines[0].split(":", 1)[1].split()[0]
        before = list(args[:list(args).index(word)]) if word in args else []
        return _unknown(word, " ".join([prog, *before]), available)
    if title == "Missing subcommand":
        return f"a subcommand is needed here: {lines[0].replace('Expected one of', 'one of')}"
    return lines[0]


def _box(report: str) -> tuple[str, list[str]]:
    """(title, content lines) of tyro's report, drawn as a box on a terminal or as plain text elsewhere."""
    title, lines = None, []
    for raw in report.splitlines():
        text = raw.strip().strip("│╭╰╮╯").strip()
        if raw.lstrip().startswith("╭"):
            title = text.strip("─ ")
        elif text and not _RULE.match(text):
            lines.append(text)
    if title is None and lines:  # plain text: the title is the first line
        title = lines.pop(0)
    return title or "", lines


def _unknown(word: str, where: str, available: str) -> str:
    """'--ndim does not apply to ...' or 'unknown reproduction ...' for a word the parser did not expect."""
    if word.startswith("-"):
        return f"{word} does not apply to `{where}`; see `{where} --help` for the options that do."
    noun = WORD_AFTER.get(where, "subcommand")
    choices = f"; available: {available}" if available else ""
    return f"unknown {noun} {word!r} after `{where}`{choices}."
