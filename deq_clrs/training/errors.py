"""The one error type the experiments' entry points report without a
traceback: a problem with the user's input or files, not with the code."""


class UserError(ValueError):
  """A bad setting, workdir or file; the message names it and the fix."""


class DivergedError(UserError):
  """Training produced a non-finite loss or non-finite parameters. The run
  stops before it checkpoints them: its checkpoints keep the last finite
  parameters, and the message says which steps and what to change."""


class NonFiniteLossError(UserError):
  """A validation or test loss that is NaN or inf. The run stops before it
  selects, checkpoints or writes results from it; the message names the
  step, the value, the dataset file and the likely causes (a damaged cache
  file, or divergence)."""
