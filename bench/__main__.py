"""Run every benchmark in bench/ and print its figures."""

from __future__ import annotations

import importlib
import pkgutil

import bench


def main() -> None:
    for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda m: m.name):
        if info.name not in ("server", "__main__"):
            importlib.import_module(f"bench.{info.name}").main()


if __name__ == "__main__":
    main()
