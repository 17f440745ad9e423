"""The one exception type the CLI turns into a single readable line.

Code anywhere in retrocolor raises :class:`UserError` for anything the *user* can fix (a missing
file, a video with no game screen, a model of the wrong shape).  The CLI prints its message as
``retrocolor: error: ...`` and exits non-zero, so users never see a traceback for bad input.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment, reported as one line.

    ``exit_code`` lets a caller distinguish classes of failure (2: bad input, 3: I/O, ...).
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        # Keep it one line: multi-line messages break the "one clear line" promise.
        super().__init__(" ".join(str(message).split()))
        self.exit_code = exit_code
