# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create or reuse .venv in the repo root and install everything the project needs.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test install clean default-model

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sectionseg demo --out demo_output

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf $(VENV) demo_output

# The bundled default model, reproducibly: data generation, training (CPU, ~95 min on 2 cores),
# half-precision export into the package, evaluation on held-out seeds and an unseen style.
MODEL_WORK ?= work_data
default-model: $(STAMP)
	$(VENV)/bin/sectionseg dataset --out $(MODEL_WORK)/ds_train --wafers 12 --wafer-size 2048 \
	  --styles default,crowded,large-sections,sparse,default,crowded --split 900 90 50 --seed 1 --overwrite
	$(VENV)/bin/sectionseg dataset --out $(MODEL_WORK)/ds_lowcontrast --wafers 3 --wafer-size 2048 \
	  --styles low-contrast --split 0 0 50 --seed 1001 --overwrite
	$(VENV)/bin/sectionseg train --config cpu --data $(MODEL_WORK)/ds_train --out $(MODEL_WORK)/run_cpu --epochs 6 --seed 0
	$(VENV)/bin/sectionseg export $(MODEL_WORK)/run_cpu/best.pt src/sectionseg/data/default_model.pt --half --name default-cpu
	$(VENV)/bin/sectionseg evaluate --data $(MODEL_WORK)/ds_train --split test --out $(MODEL_WORK)/eval_test
	$(VENV)/bin/sectionseg evaluate --data $(MODEL_WORK)/ds_lowcontrast --split test --out $(MODEL_WORK)/eval_lowcontrast
