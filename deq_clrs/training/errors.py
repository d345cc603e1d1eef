"""The one error type the experiments' entry points report without a
traceback: a problem with the user's input or files, not with the code."""


class UserError(ValueError):
  """A bad setting, workdir or file; the message names it and the fix."""
