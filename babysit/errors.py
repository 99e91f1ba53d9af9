"""The project's own errors: what a user did wrong, said so that they can fix it."""


class BabysitError(Exception):
    """Base of every error that is the user's to fix (bad config, bad data, a diverged run)."""


class ConfigError(BabysitError, ValueError):
    """One or more problems with a configuration; ``problems`` holds one line each."""

    def __init__(self, problems):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class DataError(BabysitError, ValueError):
    """A data set that cannot be used, with what is wrong and where."""


class DivergedError(BabysitError, RuntimeError):
    """Training produced a non-finite cost or weight."""
