"""`python -m comp` runs the CLI (useful where the `comp` script is not on PATH)."""

from comp.cli import main

if __name__ == "__main__":
    main(prog_name="comp")
