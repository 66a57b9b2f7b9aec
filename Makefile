# Two commands do all set-up on a fresh machine:
#   make demo   install what is missing, then train + evaluate Mask R-CNN + CvT-13 on the
#               built-in demo data (make demo-seg: UperNet + mIoU; BACKBONE=<name> for any
#               registered backbone with a demo config, e.g. BACKBONE=convit)
#   make test   install what is missing, then run the whole test suite
# Everything lives in the project-local virtual environment .venv; a second run of either
# command installs nothing (the stamp file is newer than every requirements file).
# Every install step takes its exact versions from requirements/constraints.txt, the one
# place of pins; the other requirements files (and setup.py) hold compatible ranges.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
INSTALL := $(PIP) install -c requirements/constraints.txt
STAMP  := $(VENV)/.cvt_dense-installed
# One pytest worker per core (pytest-xdist), each file on one worker: the module fixtures
# (tiny datasets, trained models) are made once. PYTEST_ARGS="-n 0" runs in one process.
PYTEST_ARGS ?= -n auto --dist loadfile
BACKBONE ?=

# CUDA ops in mmcv only where a CUDA GPU and nvcc are both present. The built wheel is not
# cached on such machines so a CPU-only wheel from the cache is never reused there.
HAVE_CUDA := $(shell command -v nvcc >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
MMCV_ENV  := MMCV_WITH_OPS=1 $(if $(HAVE_CUDA),FORCE_CUDA=1)
MMCV_PIP  := $(if $(HAVE_CUDA),--no-cache-dir)

.PHONY: install test demo demo-seg env clean-venv

install: $(STAMP)

$(STAMP): setup.py $(wildcard requirements/*.txt)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(INSTALL) -r requirements/build.txt
	@echo "Building mmcv with ops if no cached wheel exists (~9 min on 2 cores, once)"
	$(MMCV_ENV) $(INSTALL) --no-build-isolation $(MMCV_PIP) -r requirements/mmcv.txt
	$(INSTALL) --no-build-isolation -e '.[det,seg,tests]'
	$(PY) -m cvt_dense.env
	touch $(STAMP)

test: $(STAMP)
	@# pytest exits 5 when it collects nothing: a failure only if test files exist.
	$(PY) -m pytest tests $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ] && [ -z "$$(find tests -name 'test_*.py')" ]; then \
		echo "no test files yet"; rc=0; fi; exit $$rc

demo: $(STAMP)
	$(PY) tools/demo.py --task det $(if $(BACKBONE),--backbone $(BACKBONE))

demo-seg: $(STAMP)
	$(PY) tools/demo.py --task seg $(if $(BACKBONE),--backbone $(BACKBONE))

env: $(STAMP)
	$(PY) -m cvt_dense.env

clean-venv:
	rm -rf $(VENV)
