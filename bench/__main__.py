"""Run every benchmark in bench/ (each module with a main()) and print its figures."""

from __future__ import annotations

import importlib
import pkgutil

import bench


def main() -> None:
    for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"bench.{info.name}")
        if info.name != "__main__" and hasattr(module, "main"):
            print(flush=True)
            module.main()


if __name__ == "__main__":
    main()
