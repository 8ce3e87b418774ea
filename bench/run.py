"""Run every benchmark module present (`make bench`): each writes its key of bench/results.json.

python -m bench.run [--only NAME ...]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import sys

# In order; a module missing from this checkout is skipped.
MODULES = ("bench.throughput", "bench.state_memory", "bench.pipeline_memory")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", metavar="NAME", help="e.g. pipeline_memory")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    wanted = {f"bench.{n}" if not n.startswith("bench.") else n for n in args.only or ()}
    failed = []
    for name in MODULES:
        if wanted and name not in wanted:
            continue
        if importlib.util.find_spec(name) is None:
            print(f"== {name}: not present, skipped", flush=True)
            continue
        print(f"== {name}", flush=True)
        module = importlib.import_module(name)
        try:
            # main(argv) or main(): run with no arguments either way
            takes_argv = bool(inspect.signature(module.main).parameters)
            rc = module.main([]) if takes_argv else module.main()
        except SystemExit as exc:  # a benchmark gives up with a message
            rc = exc.code if isinstance(exc.code, int) else 1
            if not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
