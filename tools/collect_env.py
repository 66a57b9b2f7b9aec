"""Print the environment report (same as ``python -m cvt_dense.env``)."""
import sys

from cvt_dense.env import main

if __name__ == '__main__':
    sys.exit(main())
