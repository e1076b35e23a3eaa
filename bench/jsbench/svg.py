"""A small SVG writer for the benchmark charts (no gnuplot, no third-party module).

ratio_chart: horizontal grouped bars of ratios to a reference allocator on a log2
axis, drawn from 1.0 outwards (left of the line: less than the reference, i.e.
faster or smaller; right: more).
line_chart: lines over a shared x axis (the fragmentation workload's RSS per round).
log_panels: small multiples, one panel per pattern, lines on log2 axes (latency's
cycles by size per allocator).
"""

import math
from xml.sax.saxutils import escape

COLORS = {
    "jsmalloc": "#d62728",
    "glibc": "#7f7f7f",
    "mimalloc": "#1f77b4",
    "jemalloc": "#2ca02c",
    "tcmalloc": "#ff7f0e",
    "live": "#000000",
}
_FALLBACK = ["#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
FONT = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\""


def color(name, i=0):
    return COLORS.get(name, _FALLBACK[i % len(_FALLBACK)])


def _fmt_ratio(v):
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


class _Doc:
    def __init__(self, width, height):
        self.w, self.h = width, height
        self.parts = []

    def add(self, s):
        self.parts.append(s)

    def text(self, x, y, s, size=11, anchor="start", weight="normal", fill="#222"):
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" {FONT} '
                 f'text-anchor="{anchor}" font-weight="{weight}" fill="{fill}">'
                 f"{escape(str(s))}</text>")

    def line(self, x1, y1, x2, y2, stroke="#999", width=1, dash=None):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                 f'stroke="{stroke}" stroke-width="{width}"{d}/>')

    def rect(self, x, y, w, h, fill, title=None):
        t = f"<title>{escape(title)}</title>" if title else ""
        self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.5):.1f}" '
                 f'height="{h:.1f}" fill="{fill}">{t}</rect>')

    def render(self):
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.w}" '
                f'height="{self.h}" viewBox="0 0 {self.w} {self.h}">\n'
                f'<rect width="100%" height="100%" fill="white"/>\n')
        return head + "\n".join(self.parts) + "\n</svg>\n"


def ratio_chart(title, subtitle, categories, series, values, reference):
    """values[(category, series)] = ratio or None. Returns SVG text."""
    shown = [s for s in series if s != reference]
    if not shown:
        shown = list(series)
    finite = [v for (c, s), v in values.items() if v and s in shown and v > 0]
    lo = min([0.5] + finite)
    hi = max([2.0] + finite)
    lo_e = max(-6, math.floor(math.log2(lo)))
    hi_e = min(6, math.ceil(math.log2(hi)))
    bar_h, gap, left, right, top = 8, 8, 170, 70, 78
    group_h = bar_h * len(shown) + gap
    plot_w = 620
    height = top + group_h * len(categories) + 40
    width = left + plot_w + right
    doc = _Doc(width, height)

    def x_of(v):
        e = math.log2(min(max(v, 2.0 ** lo_e), 2.0 ** hi_e))
        return left + (e - lo_e) / (hi_e - lo_e) * plot_w

    doc.text(12, 22, title, size=15, weight="bold")
    doc.text(12, 40, subtitle, size=11, fill="#555")
    # legend
    lx = 12
    for i, s in enumerate(shown):
        doc.rect(lx, 50, 12, 10, color(s, i))
        doc.text(lx + 16, 59, s, size=11)
        lx += 22 + 7 * len(s) + 12
    # grid and axis
    axis_y = top + group_h * len(categories)
    for e in range(lo_e, hi_e + 1):
        x = x_of(2.0 ** e)
        doc.line(x, top - 6, x, axis_y, stroke="#444" if e == 0 else "#ddd",
                 width=1.5 if e == 0 else 1)
        label = f"{2 ** e:g}" if e >= 0 else f"1/{2 ** -e:g}"
        doc.text(x, axis_y + 14, label, size=10, anchor="middle", fill="#555")
    doc.text(left + plot_w / 2, axis_y + 30, f"ratio to {reference} (log scale)", size=11,
             anchor="middle", fill="#555")
    x1 = x_of(1.0)
    for ci, cat in enumerate(categories):
        gy = top + ci * group_h
        if ci % 2 == 0:
            doc.add(f'<rect x="0" y="{gy - gap / 2:.1f}" width="{left + plot_w}" '
                    f'height="{group_h:.1f}" fill="#f6f6f6"/>')
        doc.text(left - 8, gy + group_h / 2, cat, size=11, anchor="end")
        for si, s in enumerate(shown):
            y = gy + si * bar_h
            v = values.get((cat, s))
            if not v or v <= 0:
                doc.text(x1 + 4, y + bar_h - 1, "n/a", size=8, fill="#999")
                continue
            xv = x_of(v)
            doc.rect(min(x1, xv), y, abs(xv - x1), bar_h - 1, color(s, si),
                     title=f"{cat} {s}: {_fmt_ratio(v)}")
            tx = max(x1, xv) + 3
            doc.text(tx, y + bar_h - 1, _fmt_ratio(v), size=8, fill="#333")
    return doc.render()


def line_chart(title, subtitle, xlabel, ylabel, series):
    """series: {name: [(x, y), ...]}. Returns SVG text."""
    pts = [p for s in series.values() for p in s]
    if not pts:
        pts = [(0, 0), (1, 1)]
    xmax = max(1, max(p[0] for p in pts))
    ymax = max(1e-9, max(p[1] for p in pts)) * 1.08
    left, right, top, bottom = 70, 130, 50, 50
    plot_w, plot_h = 640, 320
    doc = _Doc(left + plot_w + right, top + plot_h + bottom)

    def xy(x, y):
        return left + x / xmax * plot_w, top + plot_h - y / ymax * plot_h

    doc.text(12, 22, title, size=15, weight="bold")
    doc.text(12, 40, subtitle, size=11, fill="#555")
    step = _nice_step(ymax / 5)
    y = 0.0
    while y <= ymax:
        _, py = xy(0, y)
        doc.line(left, py, left + plot_w, py, stroke="#e5e5e5")
        doc.text(left - 6, py + 4, f"{y:g}", size=10, anchor="end", fill="#555")
        y += step
    xstep = max(1, int(_nice_step(xmax / 8)))
    for x in range(0, int(xmax) + 1, xstep):
        px, _ = xy(x, 0)
        doc.text(px, top + plot_h + 14, str(x), size=10, anchor="middle", fill="#555")
    doc.line(left, top + plot_h, left + plot_w, top + plot_h, stroke="#444")
    doc.line(left, top, left, top + plot_h, stroke="#444")
    doc.text(left + plot_w / 2, top + plot_h + 32, xlabel, size=11, anchor="middle",
             fill="#555")
    doc.add(f'<text x="16" y="{top + plot_h / 2:.1f}" font-size="11" {FONT} fill="#555" '
            f'text-anchor="middle" transform="rotate(-90 16 {top + plot_h / 2:.1f})">'
            f"{escape(ylabel)}</text>")
    labels = []
    for i, (name, points) in enumerate(series.items()):
        if not points:
            continue
        path = " ".join(f"{'M' if k == 0 else 'L'}{xy(x, y)[0]:.1f},{xy(x, y)[1]:.1f}"
                        for k, (x, y) in enumerate(points))
        dash = ' stroke-dasharray="5,4"' if name == "live" else ""
        doc.add(f'<path d="{path}" fill="none" stroke="{color(name, i)}" '
                f'stroke-width="2"{dash}/>')
        labels.append([xy(*points[-1])[1], name, color(name, i)])
    # End-of-line labels, pushed apart so that lines ending close together stay legible.
    labels.sort()
    for k in range(1, len(labels)):
        labels[k][0] = max(labels[k][0], labels[k - 1][0] + 13)
    for ly, name, col in labels:
        doc.text(left + plot_w + 8, ly + 4, name, size=11, fill=col)
    return doc.render()


def log_panels(title, subtitle, xlabel, ylabel, panels):
    """panels: {panel title: {series: [(x, y), ...]}}, x and y > 0; every panel shares
    the log2 y axis, so the panels compare with each other. Returns SVG text."""
    pts = [p for ser in panels.values() for s in ser.values() for p in s if p[0] > 0 and p[1] > 0]
    if not pts:
        pts = [(1, 1), (2, 2)]
    x_lo, x_hi = math.floor(math.log2(min(p[0] for p in pts))), \
        math.ceil(math.log2(max(p[0] for p in pts)))
    y_lo, y_hi = math.floor(math.log2(min(p[1] for p in pts))), \
        math.ceil(math.log2(max(p[1] for p in pts)))
    x_hi, y_hi = max(x_hi, x_lo + 1), max(y_hi, y_lo + 1)
    left, top, bottom, gap = 60, 92, 50, 30
    plot_w, plot_h = 260, 280
    width = left + len(panels) * (plot_w + gap) + 10
    doc = _Doc(width, top + plot_h + bottom)
    doc.text(12, 22, title, size=15, weight="bold")
    doc.text(12, 40, subtitle, size=11, fill="#555")
    names = []
    for ser in panels.values():
        names += [n for n in ser if n not in names]
    lx = 12
    for i, n in enumerate(names):
        doc.rect(lx, 50, 12, 10, color(n, i))
        doc.text(lx + 16, 59, n, size=11)
        lx += 22 + 7 * len(n) + 12

    for k, (ptitle, ser) in enumerate(panels.items()):
        x0 = left + k * (plot_w + gap)

        def xy(x, y, x0=x0):
            ex = (math.log2(x) - x_lo) / (x_hi - x_lo)
            ey = (math.log2(y) - y_lo) / (y_hi - y_lo)
            return x0 + ex * plot_w, top + plot_h - ey * plot_h

        doc.text(x0 + plot_w / 2, top - 4, ptitle, size=12, anchor="middle", weight="bold")
        for e in range(y_lo, y_hi + 1):
            _, py = xy(1 << max(x_lo, 0), 2.0 ** e)
            doc.line(x0, py, x0 + plot_w, py, stroke="#e5e5e5")
            if k == 0:
                doc.text(x0 - 6, py + 4, f"{2.0 ** e:g}", size=10, anchor="end", fill="#555")
        for e in range(x_lo, x_hi + 1, 2):
            px, _ = xy(2.0 ** e, 2.0 ** y_lo)
            doc.line(px, top, px, top + plot_h, stroke="#f0f0f0")
            v = 2 ** e
            lab = f"{v // 1024}K" if v >= 1024 else str(v)
            doc.text(px, top + plot_h + 14, lab, size=10, anchor="middle", fill="#555")
        doc.line(x0, top + plot_h, x0 + plot_w, top + plot_h, stroke="#444")
        doc.line(x0, top, x0, top + plot_h, stroke="#444")
        doc.text(x0 + plot_w / 2, top + plot_h + 32, xlabel, size=11, anchor="middle",
                 fill="#555")
        for i, n in enumerate(names):
            points = [p for p in ser.get(n, []) if p[0] > 0 and p[1] > 0]
            if not points:
                continue
            path = " ".join(f"{'M' if j == 0 else 'L'}{xy(x, y)[0]:.1f},{xy(x, y)[1]:.1f}"
                            for j, (x, y) in enumerate(points))
            doc.add(f'<path d="{path}" fill="none" stroke="{color(n, i)}" '
                    f'stroke-width="{2 if n == "jsmalloc" else 1.5}"/>')
            for x, y in points:
                px, py = xy(x, y)
                doc.add(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2" fill="{color(n, i)}">'
                        f"<title>{escape(f'{ptitle} {x} B {n}: {y:.1f}')}</title></circle>")
    doc.add(f'<text x="14" y="{top + plot_h / 2:.1f}" font-size="11" {FONT} fill="#555" '
            f'text-anchor="middle" transform="rotate(-90 14 {top + plot_h / 2:.1f})">'
            f"{escape(ylabel)} (log scale)</text>")
    return doc.render()


def _nice_step(raw):
    if raw <= 0:
        return 1
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag
