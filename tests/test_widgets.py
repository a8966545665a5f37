import base64

import matplotlib.pyplot as plt
import pytest

from dltheory import plotting
from dltheory.widgets import Explorer, choice, explore, in_kernel, slider

CALLS = []


def draw(a, kind):
    CALLS.append((a, kind))
    fig, ax = plotting.figure()
    ax.plot([0, 1], [0, a], label=kind)
    return fig


@pytest.fixture
def explorer():
    CALLS.clear()
    return explore(draw, a=slider(0.0, 1.0, num=5, default=0.5), kind=choice(["x", "y"]))


def test_controls_are_declarative_grids():
    s = slider(0.1, 10, num=3, log=True)
    assert s.values == (0.1, 1.0, 10.0) and s.default == 1.0
    assert slider(0, 1, values=[0.2, 0.4], default=0.4).values == (0.2, 0.4)
    c = choice(["sgd", "adam"], default="adam", label="optimizer")
    assert c.default == "adam" and c.label == "optimizer"


@pytest.mark.parametrize("make, words", [
    (lambda: slider(0, 1, num=1), "`num` must be an integer >= 2"),
    (lambda: slider(0, 1, num=5, default=0.3), "`default` must be one of the control's values"),
    (lambda: slider(0, 1, log=True), "a log slider needs `start` and `stop` > 0"),
    (lambda: choice([]), "`options` must not be empty"),
    (lambda: choice(["a"], default="b"), "`default` must be one of 'a'"),
    (lambda: explore(draw), "explore needs at least one control"),
])
def test_control_errors(make, words):
    with pytest.raises(ValueError) as err:
        make()
    assert words in str(err.value)


def test_explore_rejects_non_controls():
    with pytest.raises(TypeError, match="control `a` must be made with slider"):
        explore(draw, a=[1, 2])


def test_settings_cover_the_grid(explorer):
    settings = list(explorer.settings())
    assert explorer.size == len(settings) == 10
    assert {"a": 0.5, "kind": "y"} in settings
    assert explorer.label({"a": 0.25}) == "a = 0.25; kind = x"


def test_results_are_cached_per_setting(explorer):
    first = explorer.image(a=0.25)
    again = explorer.image(a=0.25, kind="x")
    assert first == again and CALLS == [(0.25, "x")]
    explorer.image(a=1.0)
    assert CALLS == [(0.25, "x"), (1.0, "x")]
    with pytest.raises(ValueError, match="`a` must be one of the control's values"):
        explorer.image(a=0.3)
    with pytest.raises(ValueError, match=r"unknown control\(s\) \['b'\]"):
        explorer.image(b=1)


def test_without_a_kernel_it_is_a_static_figure(explorer):
    assert not in_kernel()
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" not in bundle
    png = base64.b64decode(bundle["image/png"])
    assert png.startswith(b"\x89PNG") and png == explorer.image()
    assert CALLS == [(0.5, "x")]  # only the default setting was computed
    assert plt.get_fignums() == []  # the figure was closed, not left to be shown twice


def test_live_widget_redraws_on_change(explorer):
    box = explorer.widget()
    inputs = box._dltheory_inputs
    image = box.children[1]
    before = image.value
    inputs["a"].value = 1.0
    assert CALLS[-1] == (1.0, "x") and image.value != before
    assert explorer.last_update_seconds is not None
    inputs["kind"].value = "y"
    assert CALLS[-1] == (1.0, "y")
    inputs["a"].value = 0.5
    inputs["kind"].value = "x"
    assert image.value == before  # back to the cached default
    assert explorer.widget() is box


def test_in_a_kernel_the_bundle_carries_the_widget(explorer, monkeypatch):
    import dltheory.widgets as W

    monkeypatch.setattr(W, "in_kernel", lambda: True)
    bundle = explorer._repr_mimebundle_()
    view = bundle["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == explorer.widget().model_id
    assert "image/png" in bundle  # the static build shows this instead


def test_fn_must_return_a_figure():
    e = Explorer(lambda a: None, {"a": slider(0, 1, num=2)})
    with pytest.raises(TypeError, match="must return a matplotlib figure"):
        e.image()


def test_a_fn_with_fig_redraws_into_one_detached_figure():
    seen = []

    def draw_into(a, fig=None):
        seen.append(fig)
        fig, ax = plotting.figure(reuse="detached" if fig is None else fig)
        ax.plot([0, 1], [0, a])
        return fig

    e = explore(draw_into, a=slider(0.0, 1.0, num=3))
    e.image(a=0.0)
    e.image(a=1.0)
    e._repr_mimebundle_()
    assert seen[0] is None and seen[1] is not None and seen[1] is seen[-1]
    assert plt.get_fignums() == []  # pyplot never saw it: nothing is shown twice


def test_figure_reuse_argument_is_checked():
    with pytest.raises(ValueError, match="`reuse` must be None, 'detached' or a figure"):
        plotting.figure(reuse="again")


# --------------------------------------------------------------------------------------
# The kernel-free twin for the static HTML
# --------------------------------------------------------------------------------------


def _twin_data(html_text):
    import json
    import re

    raw = re.search(r'<script type="application/json" class="dltheory-twin-data">(.*?)</script>',
                    html_text, re.S).group(1)
    return json.loads(raw.replace("<\\/", "</"))


def test_twin_embeds_every_setting_with_its_label(explorer):
    html_text = explorer.twin_html()
    data = _twin_data(html_text)
    assert len(data["images"]) == explorer.size == 10
    # keys are control indices: a=0.25 is index 1 of the slider, kind=y index 1 of the choice
    assert data["labels"]["1-1"] == "a = 0.25; kind = y"
    assert data["controls"][0]["values"] == ["0", "0.25", "0.5", "0.75", "1"]
    # each `a` draws a different line (`kind` only names it, with no legend): 5 figures
    pngs = {base64.b64decode(v) for v in data["images"].values()}
    assert len(pngs) == 5 and all(p.startswith(b"\x89PNG") for p in pngs)
    assert data["images"]["1-0"] == data["images"]["1-1"] != data["images"]["2-0"]
    # the default setting is shown first, with the slider and the select at its index
    assert 'data-setting="2-0"' in html_text and f'base64,{data["images"]["2-0"]}' in html_text
    assert 'type="range" min="0" max="4" step="1" value="2"' in html_text
    assert '<select data-control="kind" aria-label="kind">' in html_text
    assert "addEventListener" in html_text


def test_twin_only_in_the_static_build(explorer, monkeypatch):
    monkeypatch.delenv("DLTHEORY_STATIC_TWINS", raising=False)
    assert "text/html" not in explorer._repr_mimebundle_()
    monkeypatch.setenv("DLTHEORY_STATIC_TWINS", "1")
    bundle = explorer._repr_mimebundle_()
    assert "dltheory-twin" in bundle["text/html"] and "image/png" in bundle


def test_twin_images_are_small(explorer):
    import numpy as np

    sizes = [len(base64.b64decode(v)) for v in _twin_data(explorer.twin_html())["images"].values()]
    full = len(explorer.image(a=0.5))
    assert np.median(sizes) < full / 2


# --------------------------------------------------------------------------------------
# What the reader sees: names without raw underscores, settings that do not run together
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, shown", [
    ("lambda_max", "λₘₐₓ"),
    ("curvature λ_max", "curvature λₘₐₓ"),
    ("init_scale", "init scale"),
    ("beta_2", "β₂"),
    ("eta", "η"),
    ("Lambda", "Λ"),
    ("batch_size", "batch size"),
    ("lr_max", "lr max"),
    ("theta_j", "θ j"),  # no subscript j in common fonts: a space instead
    ("learning rate η", "learning rate η"),
    ("depth L", "depth L"),
    ("beta", "β"),
    ("data", "data"),
])
def test_display_name_rule(name, shown):
    from dltheory.widgets import display_name

    assert display_name(name) == shown


def _explorer_with_names():
    def draw_into(lambda_max, init_scale, rule, fig=None):
        fig, ax = plotting.figure(width=6, reuse="detached" if fig is None else fig)
        ax.plot([0, 1], [0, lambda_max * init_scale])
        ax.legend([rule], fontsize=9)
        return fig

    return explore(draw_into, lambda_max=choice([0.4, 2.0]),
                   init_scale=slider(0, 0, values=[1e-4, 1e-2], fmt="{:.0e}"),
                   rule=choice(["sqrt_rule", "linear"], label="scaling_rule"))


def test_settings_read_with_names_and_separators():
    e = _explorer_with_names()
    assert e.label({}) == "λₘₐₓ = 0.4; init scale = 1e-02; scaling rule = sqrt rule"
    assert "_" not in e.label({"rule": "linear"})


def test_live_widget_and_twin_show_the_same_names():
    import re

    e = _explorer_with_names()
    inputs = e.widget()._dltheory_inputs
    assert [i.description for i in inputs.values()] == ["λₘₐₓ", "init scale", "scaling rule"]
    assert all(i.layout.margin for i in inputs.values())  # a gap after each control
    html_text = e.twin_html()
    labels = re.findall(r'<label class="dltheory-twin-control">(.*?)</label>', html_text)
    assert [re.match(r"[^<]*", lab).group(0).strip() for lab in labels] == \
        ["λₘₐₓ", "init scale", "scaling rule"]
    # the controls are laid out apart (a flex gap) and separated in the text as well,
    # so "0.4" never runs into "init scale" (as "0.4init scale")
    controls = re.search(r'<div class="dltheory-twin-controls" style="([^"]*)">(.*?)</div>',
                         html_text, re.S)
    assert "gap:" in controls.group(1)
    assert re.search(r"</label>\s+<label", controls.group(2))
    text = re.sub(r"<[^>]+>", "", re.sub(r"<select.*?</select>", " ", controls.group(2),
                                           flags=re.S))
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    assert lines == ["λₘₐₓ", "init scale 1e-02", "scaling rule"], text  # one per line
    assert "_" not in text and "sqrt_rule" not in html_text
    caption = re.search(r'<div class="dltheory-twin-label"><small>(.*?)</small>', html_text)
    assert caption.group(1) == "λₘₐₓ = 0.4; init scale = 1e-02; scaling rule = sqrt rule"


def test_images_record_their_smallest_font_and_dpi():
    """The browser test reads these to check the text size every figure is shown at."""
    import io
    import re

    from PIL import Image

    e = _explorer_with_names()
    png = Image.open(io.BytesIO(e.image()))
    assert png.text[plotting.PNG_FONT_KEY] == "9"  # the legend's 9 pt
    assert png.text[plotting.PNG_DPI_KEY] == "110"  # savefig.dpi
    assert round(png.info["dpi"][0]) == 110
    html_text = e.twin_html()
    # a 6 in figure: the twin renders at 100 dpi, 600 px, shown at its natural size
    assert 'data-font-pt="9" data-dpi="100"' in html_text
    first = re.search(r'base64,([^"]+)"', html_text).group(1)
    twin_png = Image.open(io.BytesIO(base64.b64decode(first)))
    assert twin_png.size[0] == 600 and twin_png.text[plotting.PNG_FONT_KEY] == "9"


def test_wide_twins_are_rendered_at_the_content_width():
    def wide(a, fig=None):
        fig, ax = plotting.figure(2, width=10, reuse="detached" if fig is None else fig)
        ax[0].plot([0, 1], [0, a])
        return fig

    import io
    import re

    from PIL import Image

    html_text = explore(wide, a=choice([1.0, 2.0])).twin_html()
    first = re.search(r'base64,([^"]+)"', html_text).group(1)
    assert Image.open(io.BytesIO(base64.b64decode(first))).size[0] == 730
    assert 'data-dpi="73"' in html_text


# -- rendering the other settings in the background ----------------------------------

REDRAWS = []


def redraw(a, kind, fig=None, delay=0.0):
    """Draws into its previous figure; a label per setting so each image differs."""
    import time

    REDRAWS.append((a, kind))
    if a == "boom":
        raise RuntimeError("this setting fails")
    fig, ax = plotting.figure(reuse="detached" if fig is None else fig)
    time.sleep(delay)  # a slow chapter computation, for the race test
    ax.plot([0, 1], [0, float(a)], label=kind)
    ax.set_title(f"a = {a}, {kind}")
    # fixed ticks: the layout a redraw keeps is the one a first draw makes
    ax.set_ylim(-0.1, 1.1)
    ax.set_yticks([0, 0.5, 1])
    return fig


def _redrawing(delay=0.0, a=None):
    REDRAWS.clear()
    return explore(lambda a, kind, fig=None: redraw(a, kind, fig, delay),
                   a=a or slider(0, 1, values=[0.0, 0.25, 0.5, 0.75, 1.0], default=0.5),
                   kind=choice(["x", "y"]))


def _pixels(png):
    import io

    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_prerender_fills_the_cache_nearest_the_shown_setting_first():
    e = _redrawing()
    e._shown = e._key({"a": 1.0, "kind": "y"})
    assert not e.prerendered.is_set()
    assert e.prerender() == 10 and len(REDRAWS) == 10
    assert e.prerendered.is_set() and len(e._cache) == e.size
    values = e.controls["a"].values
    dist = [abs(values.index(a) - 4) + (kind != "y") for a, kind in REDRAWS]
    assert dist == sorted(dist) and REDRAWS[0] == (1.0, "y")
    # what the background rendered is what the widget would have drawn itself
    fresh = _redrawing()
    for setting in ({"a": 0.0, "kind": "x"}, {"a": 0.75, "kind": "y"}):
        a, b = _pixels(e.image(**setting)), _pixels(fresh.image(**setting))
        assert (a == b).all()
    REDRAWS.clear()
    assert e.prerender() == 0 and REDRAWS == []  # nothing left to do


def test_a_shown_widget_renders_the_rest_in_the_background(monkeypatch):
    import dltheory.widgets as W

    monkeypatch.setattr(W, "in_kernel", lambda: True)
    monkeypatch.delenv(W.PRERENDER_ENV_VAR, raising=False)
    e = _redrawing()
    e._repr_mimebundle_()
    assert e._thread is not None and e._thread.name == "dltheory-prerender"
    e._thread.join(timeout=60)
    assert e.prerendered.is_set() and len(REDRAWS) == e.size  # each setting drawn once
    inputs = e.widget()._dltheory_inputs
    inputs["a"].value = 0.0
    assert e.last_update_cached is True and len(REDRAWS) == e.size
    assert e.widget().children[1].value == e.image(a=0.0)
    assert "(cached)" in e.widget().children[2].value
    assert e.start_prerender() is e._thread  # one thread per explorer


def test_prerender_is_off_with_the_variable_or_for_a_new_pyplot_figure(explorer, monkeypatch):
    import dltheory.widgets as W

    monkeypatch.setenv(W.PRERENDER_ENV_VAR, "0")
    assert not W.prerender_enabled() and _redrawing().start_prerender() is None
    monkeypatch.setenv(W.PRERENDER_ENV_VAR, "1")
    assert W.prerender_enabled()
    # `draw` makes a new pyplot figure each call: never drawn outside the kernel's cells
    assert explorer.start_prerender() is None and CALLS == []


def test_a_setting_that_fails_in_the_background_raises_when_picked():
    e = _redrawing(a=choice([0.0, "boom", 1.0]))
    e.prerender()
    assert len(e._cache) == 4 and not e.prerendered.is_set()
    assert REDRAWS.count(("boom", "x")) == 1 and REDRAWS.count(("boom", "y")) == 1
    with pytest.raises(RuntimeError, match="this setting fails"):
        e.image(a="boom")


def test_redraws_while_the_background_draws_get_their_own_figure():
    """The lock: the reused figure is never drawn by two threads at once."""
    e = _redrawing(delay=0.01)
    reference = {
        (s["a"], s["kind"]): _pixels(_redrawing().image(**s)) for s in e.settings()}
    e._shown = e._key({"a": 0.0, "kind": "x"})
    REDRAWS.clear()
    thread = e.start_prerender()
    picked = [{"a": 1.0, "kind": "y"}, {"a": 0.75, "kind": "x"}, {"a": 0.25, "kind": "y"}]
    got = [e.image(**s) for s in picked]
    thread.join(timeout=60)
    for s, png in zip(picked, got):
        assert (_pixels(png) == reference[(s["a"], s["kind"])]).all()
    for key, png in e._cache.items():
        assert (_pixels(png) == reference[tuple(v for _, v in key)]).all()
    assert len(REDRAWS) == e.size  # nothing drawn twice


def test_a_choice_may_mix_numbers_and_words():
    e = explore(draw, a=choice([0.5, "auto"]), kind=choice(["x"]))
    assert e._key({"a": "auto"}) == (("a", "auto"), ("kind", "x"))
    assert e._key({"a": 0.5 + 1e-12})[0] == ("a", 0.5)
    with pytest.raises(ValueError, match="`a` must be one of the control's values"):
        e._key({"a": "other"})


def test_taking_the_figure_stops_the_background_and_keeps_the_figure_still():
    e = _redrawing(delay=0.02)
    thread = e.start_prerender()
    fig = e.figure(a=0.25, kind="x")   # stops the background before drawing
    assert not thread.is_alive() and e._stop.is_set()
    title = fig.axes[0].get_title()
    assert title == "a = 0.25, x"
    import time

    time.sleep(0.1)
    assert fig.axes[0].get_title() == title  # nothing drew into it since
    assert not e.prerendered.is_set() and len(e._cache) < e.size
    thread = e.start_prerender()       # a new thread resumes where the last one stopped
    thread.join(timeout=60)
    assert e.prerendered.is_set() and len(e._cache) == e.size
