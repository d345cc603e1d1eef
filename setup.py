"""Installs deq_clrs: Deep Equilibrium Algorithmic Reasoning on CLRS."""

import setuptools

setuptools.setup(
    name='deq_clrs',
    version='0.1.0',
    description=('Deep Equilibrium Algorithmic Reasoning (DEAR) in JAX on '
                 "DeepMind's CLRS benchmark"),
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    packages=setuptools.find_packages(include=['deq_clrs', 'deq_clrs.*',
                                               'experiments', 'launch']),
    python_requires='>=3.10',
    install_requires=[
        'absl-py',
        'chex',
        'dm-clrs==2.0.3',
        'dm-haiku',
        'flax',
        'jax',
        'jaxopt',
        'matplotlib',
        'ml_collections',
        'numpy',
        # optax 0.2.8 breaks stock CLRS multi-algorithm training (see
        # docs/layout.md, Dependencies); 0.2.4-0.2.6 work with jax 0.10.
        'optax>=0.2.4,<=0.2.6',
        'orbax-checkpoint',
        # experiments.intervals: Student t quantiles of the report's intervals.
        'scipy',
        'submitit',
        # flax.metrics.tensorboard (experiments' metrics) needs it.
        'tensorboard',
        'tensorflow',
    ],
    extras_require={
        # pytest-xdist: the suite runs on two processes (setup.cfg).
        'test': ['pytest', 'pytest-xdist', 'ruff'],
    },
)
