"""`python -m aioprefork` is the `aioprefork` command."""

from aioprefork.cli.app import main

main()
