"""Errors a user can cause: the CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input from the user (file, strategy, option, config).

    The message must name the thing that is wrong and say how to fix it.
    """
