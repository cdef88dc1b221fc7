"""``python -m musclestate.cli``: the same as the ``musclestate`` script."""

from musclestate.cli import main

if __name__ == "__main__":
    main()
