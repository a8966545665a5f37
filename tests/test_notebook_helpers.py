import pytest

from dltheory.notebook import glue


def test_glue_outside_a_book_build_is_quiet(capsys):
    assert glue("x", 1.5) is None
    assert capsys.readouterr().out == ""


def test_glue_name_is_checked():
    with pytest.raises(ValueError, match="`name` must be a non-empty string"):
        glue("", 1)
