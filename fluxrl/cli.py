"""The `fluxrl` console script; the commands themselves are in `fluxrl/commands/`."""

from __future__ import annotations

import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run a `fluxrl` command line (default: this process's arguments); its exit status."""
    from fluxrl.commands import run_command_line

    return run_command_line(sys.argv[1:] if argv is None else list(argv))


if __name__ == "__main__":
    sys.exit(main())
