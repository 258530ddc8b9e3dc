"""``python -m fastvol``: the command line (:mod:`fastvol.cli`)."""

from fastvol.cli import run

if __name__ == "__main__":  # not when worker processes re-import the main module
    run()
