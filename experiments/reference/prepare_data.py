"""Generates the authors' datasets of some algorithms, as their
``prepare_datasets.py`` does for all of theirs.

    cd $REF_ROOT/DEAR && ../venv/bin/python prepare_data.py bellman_ford

(``run.sh`` does this before a first run.) Their own functions, unchanged:
everything seeded with their hyperparameters' seed (47), then the train,
val and test sets of each algorithm built (dataset seed ``47 + 3 * nodes``,
``+ 1`` for val, ``+ 2`` for test) and printed. The sets go under
``./data/clrs/<algorithm>/`` in the DEAR checkout.
"""

import sys

import prepare_datasets
from hyperparameters import get_hyperparameters
from pytorch_lightning.utilities.seed import seed_everything

SPLITS = ['train', 'val', 'test']


def main(algorithms):
  if not algorithms:
    raise SystemExit('usage: prepare_data.py <algorithm> [<algorithm> ...]')
  seed = get_hyperparameters()['seed']
  seed_everything(seed)
  print(f'SEEDED with {seed}')
  prepare_datasets.construct_by_num_nodes_and_splits(algorithms, SPLITS)
  prepare_datasets.print_by_num_nodes_and_splits(algorithms, SPLITS)


if __name__ == '__main__':
  main(sys.argv[1:])
