"""Retrain, deploy and serve in one command: the same as ``python run.py --retrain-and-serve``.

Extra arguments (``--config``, ``--data``, ``--no-cache``) are passed through.
"""

import sys

from run import main

if __name__ == "__main__":
    main(["--retrain-and-serve", *sys.argv[1:]])
