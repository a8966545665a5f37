// Page checks for tests/test_browser.py, injected into a copy of the built book (never
// into the published pages). It waits for MathJax, inspects the rendered page, moves
// every kernel-free twin's first control, and writes a JSON report into the DOM, which
// the test reads back with `chromium --dump-dom`. For every figure (an output image under
// _images/, or a widget twin's image) it reports the natural and displayed widths and,
// for a twin, the smallest font and dpi its <img> records; the test reads the same two
// numbers of an output image from its PNG and works out the text's CSS pixels.
(function () {
  function visibleText() {
    var clone = document.querySelector("main") || document.body;
    clone = clone.cloneNode(true);
    clone.querySelectorAll("pre, code, script, style, .highlight, mjx-container, .MathJax")
      .forEach(function (el) { el.remove(); });
    return clone.textContent;
  }
  function imageReport() {
    var bad = [];
    document.querySelectorAll("main img, article img").forEach(function (img) {
      if (!(img.complete && img.naturalWidth > 0)) {
        bad.push((img.getAttribute("src") || "").slice(0, 80));
      }
    });
    return {count: document.querySelectorAll("main img, article img").length, broken: bad};
  }
  function contentWidth() {
    var el = document.querySelector("article") || document.querySelector("main") ||
      document.body;
    return el.getBoundingClientRect().width;
  }
  function figureReport() {
    var out = [], width = contentWidth();
    document.querySelectorAll("main img, article img").forEach(function (img) {
      var src = img.getAttribute("src") || "";
      var twin = img.closest(".dltheory-twin");
      if (!twin && src.indexOf("_images/") < 0) { return; }
      var shown = img.getBoundingClientRect().width;
      out.push({src: twin ? "twin:" + (twin.id || "") : src,
                naturalWidth: img.naturalWidth,
                // an image in a closed toggle has no box: it opens at most this wide
                displayedWidth: shown > 0 ? shown : Math.min(img.naturalWidth, width),
                hidden: !(shown > 0),
                fontPt: img.dataset.fontPt ? +img.dataset.fontPt : null,
                dpi: img.dataset.dpi ? +img.dataset.dpi : null});
    });
    return {contentWidth: width, figures: out};
  }
  function controlGap(twin) {
    // the smallest room between one control and the next on the same line, in CSS px
    var boxes = Array.prototype.map.call(
      twin.querySelectorAll(".dltheory-twin-control"),
      function (el) { return el.getBoundingClientRect(); });
    var gap = null;
    for (var i = 1; i < boxes.length; i++) {
      var a = boxes[i - 1], b = boxes[i];
      if (a.width === 0 || b.width === 0) { continue; }
      if (Math.abs(a.top - b.top) < a.height / 2) {
        var g = b.left - a.right;
        gap = gap === null ? g : Math.min(gap, g);
      }
    }
    return gap;
  }
  function twinReport() {
    var out = [];
    document.querySelectorAll(".dltheory-twin").forEach(function (twin) {
      var img = twin.querySelector("img");
      var control = twin.querySelector("[data-control]");
      var before = {src: img.getAttribute("src"), setting: twin.getAttribute("data-setting"),
                    label: twin.querySelector(".dltheory-twin-label").textContent};
      var n = control.tagName === "SELECT" ? control.options.length : (+control.max + 1);
      var old = +control.value;
      control.value = String((old + 1) % n);
      control.dispatchEvent(new Event("input", {bubbles: true}));
      var after = {src: img.getAttribute("src"), setting: twin.getAttribute("data-setting"),
                   label: twin.querySelector(".dltheory-twin-label").textContent};
      control.value = String(old);
      control.dispatchEvent(new Event("input", {bubbles: true}));
      out.push({settings: +twin.getAttribute("data-settings"),
                loaded: img.complete && img.naturalWidth > 0,
                imageChanged: before.src !== after.src,
                settingChanged: before.setting !== after.setting,
                labelChanged: before.label !== after.label,
                restored: img.getAttribute("src") === before.src,
                controlGap: controlGap(twin),
                label: before.label,
                bytes: twin.outerHTML.length});
    });
    return out;
  }
  function report() {
    var text = visibleText();
    var outputs = Array.prototype.map.call(
      document.querySelectorAll(".cell_output, .output"), function (el) { return el.textContent; }
    ).join("\n");
    var result = {
      title: document.title,
      mathjax: typeof window.MathJax !== "undefined" && !!window.MathJax.startup,
      typeset: document.querySelectorAll("mjx-container").length,
      rawMath: (text.match(/\\\(|\\\)|\\\[|\\\]|\$\$/g) || []).length,
      rawMathSample: (text.match(/.{0,40}(\\\(|\\\[|\$\$).{0,40}/) || [""])[0],
      images: imageReport(),
      traceback: /Traceback/.test(outputs),
      errorText: (outputs.match(/.{0,60}\bError\b.{0,60}/) || [null])[0],
      figures: figureReport(),
      twins: twinReport()
    };
    var pre = document.createElement("pre");
    pre.id = "dltheory-browser-check";
    pre.textContent = JSON.stringify(result);
    document.body.appendChild(pre);
  }
  window.addEventListener("load", function () {
    var ready = (window.MathJax && window.MathJax.startup && window.MathJax.startup.promise)
      ? window.MathJax.startup.promise : Promise.resolve();
    ready.then(function () { setTimeout(report, 50); },
               function () { setTimeout(report, 50); });
  });
})();
