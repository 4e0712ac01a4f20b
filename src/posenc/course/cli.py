"""The ``posenc`` command: ``posenc grade …`` (a class), ``posenc grade-self …`` (yourself) and
``posenc doctor`` (is this machine ready?)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = {
        "grade": "posenc.grading.classroom",
        "grade-self": "posenc.grading.runner",
        "doctor": "posenc.course.doctor",
    }
    if not argv or argv[0] not in commands:
        print(
            "usage: posenc {grade,grade-self,doctor} ...\n"
            "  grade SUBMISSIONS --out REPORT   grade a folder of student folders (jailed)\n"
            "  grade-self notebooks/            grade your own notebooks\n"
            "  doctor                           check that this machine is ready",
            file=sys.stderr,
        )
        return 2
    import importlib

    return importlib.import_module(commands[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
