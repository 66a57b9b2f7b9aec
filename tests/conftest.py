"""One torch thread per test process when pytest-xdist runs the suite on several workers:
OpenMP threads spin, so two workers of two threads each on two cores slow each other
several-fold, while one thread each keeps every core busy. Set here, before any test
module imports torch; the tools the tests start inherit it."""
import os

if os.environ.get('PYTEST_XDIST_WORKER'):
    os.environ['OMP_NUM_THREADS'] = os.environ['MKL_NUM_THREADS'] = '1'
