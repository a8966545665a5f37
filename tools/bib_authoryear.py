"""Author-year citations whose labels match the bibliography, with 2021a/2021b.

A Sphinx extension (loaded through ``local_extensions`` in ``_config.yml``). It registers

- the pybtex formatting style ``authoryear``: entries sorted by author, year and title,
  each labelled as it is cited in the text ("Li et al., 2021a"); when two entries would
  be cited alike (same first-author surname, same "and"/"et al." form, same year), their
  years get the suffixes a, b, ... in the order of the sorted bibliography;
- the sphinxcontrib-bibtex reference style ``authoryear``: sphinxcontrib-bibtex's
  author-year citations, with the year taken from that label, so that a citation and its
  bibliography entry show the same "2021a".

Select both in ``_config.yml``: ``bibtex_default_style: authoryear`` and
``bibtex_reference_style: authoryear``.
"""

from __future__ import annotations

import dataclasses
import string
from collections import Counter, defaultdict

import pybtex.plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting import BaseSortingStyle
from pybtex.style.template import node

NAME = "authoryear"


def _surname(person) -> str:
    """The printed surname of a pybtex Person, braces and TeX accents removed."""
    parts = person.prelast_names + person.last_names
    return " ".join(str(p) for p in parts).replace("{", "").replace("}", "")


def _authors(entry) -> str:
    """How the text cites the entry's authors: "Li", "Li and Arora", "Li et al."."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    if not persons:
        return str(entry.fields.get("title", entry.key))
    if len(persons) == 1:
        return _surname(persons[0])
    if len(persons) == 2:
        return f"{_surname(persons[0])} and {_surname(persons[1])}"
    return f"{_surname(persons[0])} et al."


class AuthorYearLabelStyle(BaseLabelStyle):
    """Labels "Li et al., 2021a": the in-text form, disambiguated within the list."""

    def format_labels(self, sorted_entries):
        entries = list(sorted_entries)
        keys = [(_authors(e), str(e.fields.get("year", "n.d."))) for e in entries]
        count = Counter(keys)
        seen: dict = defaultdict(int)
        for key in keys:
            suffix = ""
            if count[key] > 1:
                suffix = string.ascii_lowercase[seen[key]]
                seen[key] += 1
            yield f"{key[0]}, {key[1]}{suffix}"


class AuthorYearSortingStyle(BaseSortingStyle):
    """Sort by the cited author form, then year, then title: the order of 2021a, 2021b."""

    def sorting_key(self, entry):
        return (_authors(entry).lower(), str(entry.fields.get("year", "")),
                str(entry.fields.get("title", "")).lower())


class AuthorYearStyle(UnsrtStyle):
    """pybtex's unsrt entries, sorted by author-year-title, with author-year labels."""

    default_label_style = AuthorYearLabelStyle
    default_sorting_style = AuthorYearSortingStyle


@node
def labelled_year(children, data):
    """The year as the entry's label shows it ("2021a"): the label's last word."""
    assert not children
    from pybtex.richtext import Text

    return Text(data["formatted_entry"].label.rsplit(" ", 1)[-1])


def _reference_style():
    from sphinxcontrib.bibtex.style.referencing import author_year as AY
    from sphinxcontrib.bibtex.style.referencing import basic_author_year as B
    from sphinxcontrib.bibtex.style.referencing.extra_author import ExtraAuthorReferenceStyle
    from sphinxcontrib.bibtex.style.referencing.extra_empty import ExtraEmptyReferenceStyle
    from sphinxcontrib.bibtex.style.referencing.extra_label import ExtraLabelReferenceStyle
    from sphinxcontrib.bibtex.style.referencing.extra_year import ExtraYearReferenceStyle
    from sphinxcontrib.bibtex.style.template import join, join2, post_text, pre_text, reference

    @dataclasses.dataclass
    class Parenthetical(B.BasicAuthorYearParentheticalReferenceStyle):
        def inner(self, role_name):
            return join2(sep1=self.pre_text_sep, sep2=self.post_text_sep)[
                pre_text,
                reference[join(sep=self.author_year_sep)[
                    self.person.author_or_editor_or_title(full="s" in role_name),
                    labelled_year,
                ]],
                post_text,
            ]

    @dataclasses.dataclass
    class Textual(B.BasicAuthorYearTextualReferenceStyle):
        def inner(self, role_name):
            return join(sep=self.text_reference_sep)[
                self.person.author_or_editor_or_title(full="s" in role_name),
                join[
                    self.bracket.left,
                    join2(sep1=self.pre_text_sep, sep2=self.post_text_sep)[
                        pre_text, reference[labelled_year], post_text],
                    self.bracket.right,
                ],
            ]

    @dataclasses.dataclass
    class Year(ExtraYearReferenceStyle):
        def inner(self, role_name):
            return reference[labelled_year]

    @dataclasses.dataclass
    class AuthorYearSuffixReferenceStyle(AY.AuthorYearReferenceStyle):
        """sphinxcontrib-bibtex's author-year references with the label's year."""

        def __post_init__(self):
            self.styles.extend([
                Parenthetical(bracket=self.bracket_parenthetical, person=self.person,
                              author_year_sep=self.author_year_sep,
                              pre_text_sep=self.pre_text_sep,
                              post_text_sep=self.post_text_sep),
                Textual(bracket=self.bracket_textual, person=self.person,
                        text_reference_sep=self.text_reference_sep,
                        pre_text_sep=self.pre_text_sep, post_text_sep=self.post_text_sep),
                ExtraAuthorReferenceStyle(bracket=self.bracket_author, person=self.person),
                ExtraLabelReferenceStyle(bracket=self.bracket_label),
                Year(bracket=self.bracket_year),
                ExtraEmptyReferenceStyle(),
            ])
            # GroupReferenceStyle's own __post_init__, which maps role names to styles
            super(AY.AuthorYearReferenceStyle, self).__post_init__()

    return AuthorYearSuffixReferenceStyle


def register() -> None:
    """Register both styles under the name ``authoryear`` (idempotent)."""
    import sphinxcontrib.bibtex.plugin as bibtex_plugin

    pybtex.plugin.register_plugin("pybtex.style.formatting", NAME, AuthorYearStyle,
                                  force=True)
    bibtex_plugin.register_plugin("sphinxcontrib.bibtex.style.referencing", NAME,
                                  _reference_style(), force=True)


register()


def setup(app):
    return {"parallel_read_safe": True, "parallel_write_safe": True}
