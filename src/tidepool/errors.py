"""The error every tidepool command may raise to stop with a message instead of a traceback."""


class TidepoolError(Exception):
    """A failure the user can act on: `message` says what happened and what to do next.

    The CLI prints it as ``error: <message>`` and exits with `exit_code`.
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
