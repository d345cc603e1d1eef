"""The one error type the experiments' entry points report without a
traceback: a problem with the user's input or files, not with the code."""


class UserError(ValueError):
  """A bad setting, workdir or file; the message names it and the fix."""


class DivergedError(UserError):
  """Training produced a non-finite loss or non-finite parameters. The run
  stops before it checkpoints them: its checkpoints keep the last finite
  parameters, and the message says which steps and what to change."""
