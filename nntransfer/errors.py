"""Errors the command line turns into one line (exit 2). Imports nothing, so the CLI can catch them
without loading DataJoint."""


class DatabaseError(RuntimeError):
    """The database cannot be used: unreachable, wrong credentials, bad schema name, or not configured."""
