"""The one exception type that reaches the user as a one-line message and an exit code."""

# Exit codes, documented in docs/reliability.md.
EXIT_OK = 0
EXIT_FAILURE = 1  # an unexpected error (a bug): full traceback
EXIT_BAD_INPUT = 2  # bad data, bad config, bad option, stale folds: one line, nothing written
EXIT_INVALID_SUBMISSION = 3  # `comp submit --check`: the file was read and has problems


class CompError(Exception):
    """An error the user can fix: printed as one line, exit code `exit_code`."""

    exit_code = EXIT_BAD_INPUT
