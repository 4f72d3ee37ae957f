"""Readable charts in a real browser: whole run names in the legends (the AUC/AP numbers of the
ROC/PR legends included), in the hover tooltip and on Compare's bar axis, and a hover anywhere
on a curve chart that shows every run's smoothed and raw value at that x, as TensorBoard and
W&B do.

Finished fake runs (tests/fakeruns.py), so nothing trains; the fixtures are in
tests/browser_helpers.py.
"""

from __future__ import annotations

import re

import pytest

from tests.browser_helpers import CHROMIUM, MINUTE, assert_clean, snap
from tests.fakeruns import make_run

pytestmark = [
    pytest.mark.browser, pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (Debian's `chromium` "
                       "package; scripts/test.sh installs it when run as root)"),
]
# Run ids are the names of fake runs; the first is as long as a sweep member's name gets.
LONG = "20260103-000000-ablation-lr-0p3-label-smoothing-0p1-flooding-0p05-seed-0021"
SHORT = "20260103-000001-baseline-seed-0000"

# The texts a chart's SVG legends (role "legend-label") or axes ("axis-label") show, by chart
# title, and whether each is drawn inside the chart's element (a label past it is cut off by the
# page, whatever its text holds). Vega draws labels as <text> items of their role, a wrapped one
# as <tspan> lines; a label cut by labelLimit (180 px on an axis by default) ends in an ellipsis.
LABEL_PROBE = """
([title, role]) => {
  for (const chart of document.querySelectorAll('[data-testid="stVegaLiteChart"]')) {
    const t = chart.querySelector('[aria-roledescription="title"]');
    if (!t || !(t.getAttribute('aria-label') || '').includes(`'${title}'`)) continue;
    const box = chart.getBoundingClientRect();
    return [...chart.querySelectorAll(`.role-${role} text`)].map(e => {
      const r = e.getBoundingClientRect();
      return {text: e.textContent, inside: r.left >= box.left - 1 && r.right <= box.right + 1};
    });
  }
  return null;
}
"""
# Each cell of the shown tooltip: its text, and whether the page shows it whole (a cell cut by
# its width, ellipsis or line clamp scrolls: its content is larger than its box), and whether
# the tooltip itself lies inside the window.
TOOLTIP_PROBE = """
() => {
  const tip = document.getElementById('vg-tooltip-element');
  const box = tip.getBoundingClientRect();
  return {
    inside: box.left >= 0 && box.right <= window.innerWidth,
    cells: [...tip.querySelectorAll('td')].map(td => ({
      text: td.textContent,
      whole: td.scrollWidth <= td.clientWidth + 1 && td.scrollHeight <= td.clientHeight + 1,
    })),
  };
}
"""
def chart(page, title: str):
    """The Streamlit element of the chart titled ``title``."""
    return page.get_by_test_id("stVegaLiteChart").filter(
        has=page.locator(f'[aria-roledescription="title"][aria-label*="\'{title}\'"]'))


def label_texts(page, title: str, role: str = "legend-label") -> list[str]:
    """The labels of ``role`` of the chart titled ``title``, each checked to be drawn whole."""
    args = [title, role]
    page.wait_for_function(f"(a) => ({LABEL_PROBE})(a)?.length > 0", arg=args, timeout=MINUTE)
    labels = page.evaluate(LABEL_PROBE, args)
    outside = [label["text"] for label in labels if not label["inside"]]
    assert not outside, f"{title}: {role}s run past the chart: {outside}"
    return [label["text"] for label in labels]


def test_legends_show_whole_names_and_hover_shows_every_run(server, page):
    for i, run_id in enumerate((LONG, SHORT)):
        make_run(server.runs_dir, run_id, "finished", steps=400, seed=i, quality=0.6 + 0.2 * i)

    # --- Runs: legend and hover ------------------------------------------------------------
    page.goto(f"{server.url}/?runs={LONG},{SHORT}&metric=train/loss")
    labels = label_texts(page, "train/loss")
    assert LONG in labels and SHORT in labels, labels
    assert not any(label.endswith("…") for label in labels), labels

    box = chart(page, "train/loss").locator("svg").first.bounding_box()
    # Over the plot, well above the curves (the loss falls in its first steps): no line nor
    # point under the pointer, so only the hover rule's Voronoi strip can answer.
    page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.3)
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.3, steps=5)
    tip = page.locator("#vg-tooltip-element")
    tip.wait_for(state="visible", timeout=MINUTE)
    text = tip.inner_text()
    assert LONG in text and SHORT in text, text
    assert text.count("raw") == 2, text
    assert "step" in text, text
    # Whole on screen, not only in the DOM: Streamlit cut a key (a run's name) with an ellipsis.
    shown = page.evaluate(TOOLTIP_PROBE)
    assert shown["inside"], shown
    assert LONG in [c["text"] for c in shown["cells"]], shown
    assert all(c["whole"] for c in shown["cells"]), [c for c in shown["cells"] if not c["whole"]]
    snap(page, "hover")
    assert_clean(page, "Runs")

    # --- Compare: ROC and PR legends keep the AUC / AP numbers ----------------------------------
    page.goto(f"{server.url}/compare?runs={LONG},{SHORT}")
    for title, name in (("ROC", "AUC"), ("precision-recall", "AP")):
        labels = label_texts(page, title)
        labels = [label for label in labels if label.startswith("20260103-")]
        assert len(labels) == 2, labels
        for label in labels:  # a wrapped label's lines join without the space at the break
            assert re.search(rf"\({name} ?0\.\d{{3}}\)$", label), labels
        assert any(label.startswith(LONG) for label in labels), labels
    # Compare's bars: every run name on the axis whole (the two runs form one seed group).
    labels = [t for t in label_texts(page, "F1 (higher is better)", "axis-label")
              if t.startswith("2026")]
    assert any(t.startswith(LONG) for t in labels), labels
    assert not any(t.endswith("…") for t in labels), labels
    snap(page, "compare")
    assert_clean(page, "Compare")
