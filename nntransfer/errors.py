"""Errors the command line turns into one line (exit 2). Imports nothing, so the CLI can catch them
without loading DataJoint."""


class DatabaseError(RuntimeError):
    """The database cannot be used: unreachable, wrong credentials, bad schema name, or not configured."""


class StorageError(OSError):
    """A result, checkpoint or failure record cannot be written: disk full, read-only or unwritable folder.

    Not the step's fault, so it is never recorded as the step's failure: the run stops, what was stored
    stays whole, and the step resumes from its checkpoints once there is room. The message is one line
    naming the file or folder and what to do."""


class DatabaseLost(DatabaseError):
    """The database went away while a job ran (server stopped, connection killed). Finished steps are kept
    and the interrupted one resumes from its checkpoints when the run or worker is started again; the
    command line exits with status 1 (the job did not finish), not 2 (bad input)."""


class ChainCheckError(ValueError):
    """The preflight found problems in steps still to train, before anything was trained or written:
    ``problems`` holds one line per problem (each naming the experiment, seed and step), all of them, and
    the command line prints each on its own line (exit 2)."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class CodeChanged(ValueError):
    """Stored steps were trained by user code that has changed since (``nntransfer.pipeline.drift``); nothing
    was trained. ``problems``: a line saying what to do, then one line per changed step (name, seed, step, id
    and the changed modules); the command line prints each on its own line (exit 2)."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class StepPruned(KeyboardInterrupt):
    """A search stopped the step it was training: the trial's validation curve was hopeless
    (``nntransfer.search``'s pruner). Stops the step as an interrupt does, hence the base class (no handler
    of ``Exception`` records it as the step's failure): nothing of the step is stored, its checkpoint is kept,
    and the search records its trial as pruned."""
