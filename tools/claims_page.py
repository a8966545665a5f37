"""Write the claims ledger page, book/claims.md, from the registry in dltheory.claims.

    python tools/claims_page.py           write book/claims.md
    python tools/claims_page.py --check   exit 1 if book/claims.md is not up to date

The page quotes each chapter's measured values with cross-document glue, so the numbers
are those of the book's build; this script only lays out the table.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "claims.md"


def render() -> str:
    from dltheory import claims

    return claims.claims_page(ROOT) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if the page is out of date")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != text:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run `python tools/claims_page.py`",
                  file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
