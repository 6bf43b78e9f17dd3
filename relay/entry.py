"""``avisa``: the command line with every command, including ``avisa demo``.

The composition root of the command line: ``relay.cli`` holds the commands of
a node, ``relay.demo`` plugs its own in here, so no layer imports one above it.

It is also the one place where ``avisa`` meets the terminal's two signals, for
every command (issue 27):

- **Ctrl-C** (SIGINT) ends a command quietly with code 130, whenever it comes:
  even while the modules are still loading, which is why they are imported
  inside ``main`` and this module imports nothing else first. (What remains is
  the interpreter's own start, a few hundredths of a second: a Ctrl-C there
  is Python's to report.) A running node installs its own handler once it is up and
  stops cleanly (``relay.http.app.run_until_stopped``).
- **A closed pipe** (``avisa … | head -1``; SIGPIPE, which Python ignores and
  turns into ``BrokenPipeError``) ends it quietly with code 141 (128 + SIGPIPE,
  as a shell tool killed by the signal). Standard output is pointed at
  ``/dev/null`` first, so the interpreter's last flush cannot complain either.
"""

from __future__ import annotations

import os  # os and sys are loaded with the interpreter: importing them costs nothing,
import sys  # and nothing else is imported before main's handler is in place

TYPE_CHECKING = False  # not typing's: importing typing alone takes ~45 ms
if TYPE_CHECKING:
    from collections.abc import Sequence

INTERRUPTED = 130  # 128 + SIGINT
PIPE_CLOSED = 141  # 128 + SIGPIPE


def main(argv: Sequence[str] | None = None) -> int:
    try:
        from relay.cli.main import main as cli_main
        from relay.demo.command import register as register_demo

        code = cli_main(argv, extra=(register_demo,))
        sys.stdout.flush()  # here, where a closed pipe can still be caught
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:
        _discard_output()
        return PIPE_CLOSED
    return code


def _discard_output() -> None:
    """What is still buffered for a closed pipe goes nowhere, without another error."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError):  # a stream without a descriptor (tests)
            continue
    os.close(devnull)
