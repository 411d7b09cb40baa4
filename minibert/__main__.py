"""`python -m minibert` and the `minibert` command: the process settings first (before NumPy
loads, see minibert/runtime.py), then the command line."""

import sys


def main() -> int:
    from .runtime import configure_runtime
    configure_runtime()
    from .cli import main as cli_main
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
