"""absl entry points: training, checkpoint evaluation and the report."""
