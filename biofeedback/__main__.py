"""``python -m biofeedback`` is the ``biofeedback`` command."""

from biofeedback.cli.main import main

main()
