"""A local stand-in for ``cowsay`` (``argoproj/argosay:v1``) and the whale of ``docker/whalesay``.

``cowsay.py cow|whale [-W width] [MESSAGE...]``: the message (the arguments joined by a space, or
stdin when there are none) in a speech bubble wrapped at 40 columns, above the animal.
"""

from __future__ import annotations

import sys
import textwrap

COW = r"""        \   ^__^
         \  (oo)\_______
            (__)\       )\/\
                ||----w |
                ||     ||"""

WHALE = "\n".join(
    [
        '    \\',
        '     \\',
        '      \\',
        '                    ##        .',
        '              ## ## ##       ==',
        '           ## ## ## ##      ===',
        '       /""""""""""""""""___/ ===',
        '  ~~~ {~~ ~~~~ ~~~ ~~~~ ~~ ~ /  ===- ~~~',
        '       \\______ o          __/',
        '        \\    \\        __/',
        '          \\____\\______/',
    ]
)


def bubble(message: str, width: int = 40) -> list[str]:
    """The speech bubble lines around ``message`` (wrapped at ``width`` columns, like cowsay)."""
    lines: list[str] = []
    for paragraph in message.expandtabs(8).split("\n"):
        lines.extend(textwrap.wrap(paragraph, width) or [""])
    size = max(len(line) for line in lines)
    out = [" " + "_" * (size + 2)]
    if len(lines) == 1:
        out.append(f"< {lines[0]} >")
    else:
        last = len(lines) - 1
        for index, line in enumerate(lines):
            left, right = ("/", "\\") if index == 0 else ("\\", "/") if index == last else ("|", "|")
            out.append(f"{left} {line.ljust(size)} {right}")
    out.append(" " + "-" * (size + 2))
    return out


def main(argv: list[str]) -> int:
    """Print the bubble and the animal named by the first argument."""
    animal = WHALE if argv[:1] == ["whale"] else COW
    args = argv[1:]
    width = 40
    if len(args) >= 2 and args[0] == "-W":
        try:
            width = max(1, int(args[1]))
        except ValueError:
            print(f"cowsay: invalid width {args[1]!r}", file=sys.stderr)
            return 1
        args = args[2:]
    message = " ".join(args) if args else sys.stdin.read().rstrip("\n")
    print("\n".join([*bubble(message, width), animal]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
