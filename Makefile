# The two commands a new user needs are `make run` and `make test`; the rest serve them.
.PHONY: run test install bench lint messages images

run:
	scripts/run.sh

test: install
	.venv/bin/python -m pytest

install:
	scripts/install.sh

bench: install
	.venv/bin/python -m bench

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

messages: install
	.venv/bin/python manage.py makemessages -l en --ignore=.venv --ignore=var
	.venv/bin/python manage.py compilemessages -l en --ignore=.venv
