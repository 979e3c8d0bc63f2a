"""The sleep/shell image: with arguments, becomes that command (found on the host's
PATH, so ``nslookup``, ``dig``, ``curl`` work in the pod); without, idles until SIGTERM
and exits 0 — a container to ``kubectl exec`` into."""

from __future__ import annotations

import os
import sys

from svcnet.agent.demo import wait_for_signal


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        try:
            os.execvp(args[0], args)
        except OSError as err:
            print(f"exec {args[0]}: {err.strerror}", file=sys.stderr, flush=True)
            return 127
    return wait_for_signal()


if __name__ == "__main__":
    sys.exit(main())
