# The course in two commands: `make lab` and `make test` (see README.md).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA_STAMP := data/.prepared
PROFILE ?= standard
# seeds of the pre-trained encoders that `make pretrain` builds
SEEDS ?= 0
# the pre-trained encoders the notebooks load (course_lib.encoders.course_encoders names)
BOOK_ENCODERS := vgg_tiny
# The developers' sample folder of real data sets (notebook 08's EM sections), when present;
# a COURSE_DATA_MIRROR set in the environment wins.
REAL_MIRROR := $(wildcard $(abspath ../shared/data/real))
# JupyterLab refuses to start as root (containers, CI boxes) unless told it may.
LAB_FLAGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: lab lab-student test setup data pretrain lint run student nbgrader bench clean-data book smoke

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

data: $(DATA_STAMP)

# The data sets, and the pre-trained encoder the notebooks start from (03, 05-07, 09, 11, 12:
# vgg_tiny at the standard profile's sizes, COURSE_SEED): a few minutes once on 2 cores, as a
# download of ImageNet weights would be (`make book` builds those of another COURSE_SEED). A
# notebook that finds none pre-trains it on the fly.
$(DATA_STAMP): $(STAMP)
	$(PY) -m course_lib.data.prepare
	$(PY) -m course_lib.encoders --profile standard --only $(BOOK_ENCODERS) --jobs 2
	touch $@

# The course's pre-trained encoders (course_lib.pretrain: the shapes world as ImageNet), once per
# profile and seed, into data/pretrained: `make pretrain`, `make pretrain SEEDS="0 1 2"`
pretrain: setup
	$(PY) -m course_lib.encoders --profile $(PROFILE) --seeds $(SEEDS)

# The course with its solutions (teachers, readers). Students: `make lab-student`.
lab: setup data
	$(VENV)/bin/jupyter lab $(LAB_FLAGS) notebooks/00_introduction.ipynb

# Students: your own copies in student/ (exercises unsolved). Made on the first run; a copy
# that exists is kept (it holds your answers), notebooks new to the course are added.
lab-student: setup data
	$(PY) -m course_lib.student notebooks student
	$(VENV)/bin/jupyter lab $(LAB_FLAGS) student/00_introduction.ipynb

lint: setup
	$(PY) -m ruff check course_lib tests

test: setup data lint
	COURSE_PROFILE=quick OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadfile --nbval-lax --nbval-cell-timeout=600 --durations=30 tests notebooks

# One notebook in a profile, executed in place of a copy under artifacts/: `make run NB=00 PROFILE=standard`
run: NB ?= 00
run: setup data
	$(PY) -m course_lib.run_notebook $(NB) --profile $(PROFILE)

# The course book: every notebook (or `NB=05`) executed in the standard profile, one after
# another (or `JOBS=2` at a time, each kernel with cores/JOBS threads), into artifacts/book/
# (executed copies, HTML, index.html with times, memory and every lesson table). Fails when a
# cell fails or a lesson does not hold.
JOBS ?= 1
book: setup data
	$(PY) -m course_lib.encoders --profile standard --only $(BOOK_ENCODERS) --jobs 2
	COURSE_DATA_MIRROR="$${COURSE_DATA_MIRROR:-$(REAL_MIRROR)}" $(PY) -m course_lib.book $(or $(NB),all) --profile standard --jobs $(JOBS)

# Full-profile smoke run: every notebook at paper widths and 256 px on this CPU, each loop capped
# at 2 steps and the data sets at a few images (COURSE_SMOKE=1), into artifacts/smoke/; `JOBS=2`
# as for the book.
smoke: setup data
	COURSE_DATA_MIRROR="$${COURSE_DATA_MIRROR:-$(REAL_MIRROR)}" $(PY) -m course_lib.book $(or $(NB),all) --profile full --smoke --no-html --out artifacts/smoke --jobs $(JOBS)

# Student copies (solutions stripped, outputs cleared) into student/; existing copies are
# kept unless OVERWRITE=1 (a teacher preparing the hand-out)
student: setup
	$(PY) -m course_lib.student notebooks student $(if $(OVERWRITE),--overwrite)

# nbgrader course folder (source/<NN>/ with nbgrader's cell metadata) for teachers:
# `make nbgrader`, or `make nbgrader NBGRADER_DIR=~/teaching/seg NBS="05 08"`
NBGRADER_DIR ?= artifacts/nbgrader
nbgrader: setup
	$(PY) -m course_lib.classroom notebooks $(NBGRADER_DIR) $(NBS)

bench: setup data
	$(PY) -m course_lib.bench --all

# The model zoo (course_lib.zoo): every 2D model trained on one budget, one table with cost and
# accuracy, into artifacts/zoo/ (zoo.csv, zoo.md, zoo.png); `make zoo QUICK=1` is the tiny
# version of the tests, `make zoo MODELS=fcn8s,unet` a few models
.PHONY: zoo
zoo: setup data
	$(PY) -m course_lib.zoo $(if $(QUICK),--quick) $(if $(MODELS),--models $(MODELS))

# EM membranes at full resolution, the U-Net paper's recipe (course_lib.em_recipe): ssTEM sections
# 0-6 -> 7-9, one Markdown table (F1, pixel error, training seconds) beside the Otsu baseline;
# `BUDGET=120` sets each model's training seconds (default 240). `make em-ablation` trains one
# model per ingredient removed (or added) at the same training time and writes the table to
# artifacts/em/ablation.md with the total wall time (6 models: 27 min on one CPU core at 240 s)
.PHONY: em em-ablation
em: setup
	COURSE_DATA_MIRROR="$${COURSE_DATA_MIRROR:-$(REAL_MIRROR)}" $(PY) -m course_lib.em_recipe --seconds $(or $(BUDGET),240) $(if $(ABLATE),--ablation)

em-ablation: setup
	COURSE_DATA_MIRROR="$${COURSE_DATA_MIRROR:-$(REAL_MIRROR)}" $(PY) -m course_lib.em_recipe --ablation --seconds $(or $(BUDGET),240) --out artifacts/em

clean-data:
	rm -rf data/cache data/pretrained $(DATA_STAMP)
