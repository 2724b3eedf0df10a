"""``python -m fairforge_attr``: the same as the ``ffattr`` command."""

from .cli import main

if __name__ == "__main__":
    main()
