"""Sweeps of experiments.train over a cluster (SLURM job arrays) or locally."""
