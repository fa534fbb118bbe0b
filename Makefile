# The two commands a new user needs are `make run` and `make test`; the rest serve them.
.PHONY: run test install bench lint messages images

run:
	scripts/run.sh

# Two workers (pytest-xdist): each a whole session with its own services; a module's tests and all the Kubernetes
# tests stay together on one worker, and tests that measure the machine run alone (tests/turns.py).
test: install
	scripts/k8s-build.sh --background
	.venv/bin/python -m pytest -n 2

install:
	scripts/install.sh

bench: install
	.venv/bin/python -m bench

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy courseplatform lessons sandboxes

messages: install
	.venv/bin/python manage.py makemessages -l en --ignore=.venv --ignore=var --ignore=node_modules
	.venv/bin/python manage.py makemessages -d djangojs -l en -l ru --ignore=.venv --ignore=var --ignore=node_modules --ignore=static/vendor
	.venv/bin/python manage.py compilemessages -l en -l ru --ignore=.venv

# The docker backend's images (broker-academy/<kind>), built here from sandboxes/images/: no registry is used.
images: install
	scripts/docker-engine.sh
	scripts/docker-base.sh
	.venv/bin/python -m sandboxes.images.build
