"""``python -m prefdelta.cli.entry``: the console script without relying on PATH."""

from prefdelta.cli import main

if __name__ == "__main__":
    main()
