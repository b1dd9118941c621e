# Thin wrappers over dev.py, which does its own set-up (virtualenv + install) on a fresh machine.
.PHONY: run test lint ci
run:
	python3 dev.py run
test:
	python3 dev.py test
lint:
	python3 dev.py lint
ci:
	bash .ci/run
