"""A hand-written SVG bar chart of req/s: one group of horizontal bars per
scenario, one bar per server, each group on its own scale (a hello world and
a 1 MiB file differ by orders of magnitude), with the value printed on each
bar and a warning on runs that shared the machine with other work. No plotting library needed.
"""

from html import escape

from .report import LOAD_WARNING_PCT
from .scenarios import BY_NAME

COLORS = {
    "rwsgi": "#d9480f",
    "uwsgi": "#1971c2",
    "gunicorn": "#2f9e44",
    "granian": "#7048e8",
    "bjoern": "#f59f00",
    "pyruvate": "#868e96",
}
WIDTH = 860
LABEL_W = 90
BAR_MAX = 620
BAR_H = 15
GAP = 3
TITLE_H = 22
GROUP_GAP = 14
FONT = 'font-family="Helvetica, Arial, sans-serif"'


def group(y, title, bars):
    """SVG elements of one scenario's group, and the y below it."""
    out = [f'<text x="10" y="{y + 15}" font-size="13" font-weight="bold" {FONT}>{escape(title)}</text>']
    y += TITLE_H
    top = max((v for _, v, _ in bars), default=0) or 1
    for name, value, load in bars:
        w = max(1, round(BAR_MAX * value / top))
        color = COLORS.get(name, "#495057")
        out.append(f'<text x="{LABEL_W - 6}" y="{y + 12}" font-size="11" text-anchor="end" {FONT}>{escape(name)}</text>')
        out.append(f'<rect x="{LABEL_W}" y="{y}" width="{w}" height="{BAR_H}" fill="{color}"/>')
        label = f"{value:,.0f}"
        if load > LOAD_WARNING_PCT:
            label += f' <tspan fill="#c92a2a">⚠ {load:.0f}%</tspan>'
        out.append(f'<text x="{LABEL_W + w + 5}" y="{y + 12}" font-size="11" {FONT}>{label}</text>')
        y += BAR_H + GAP
    return out, y + GROUP_GAP


def render(summaries, scenario_order, server_order, subtitle=""):
    """The whole SVG document as a string."""
    body, y = [], 66
    for sc_name in scenario_order:
        by_server = summaries.get(sc_name, {})
        bars = [(n, by_server[n]["rps"], by_server[n]["other_load_pct"])
                for n in server_order if "rps" in by_server.get(n, {})]
        if not bars:
            continue
        elements, y = group(y, BY_NAME[sc_name].title, bars)
        body += elements
    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y + 10}" '
        f'viewBox="0 0 {WIDTH} {y + 10}">',
        f'<rect width="{WIDTH}" height="{y + 10}" fill="white"/>',
        f'<text x="10" y="22" font-size="16" font-weight="bold" {FONT}>Requests per second '
        f"(median; each scenario on its own scale)</text>",
        f'<text x="10" y="40" font-size="11" fill="#495057" {FONT}>{escape(subtitle)}</text>',
        f'<text x="10" y="54" font-size="11" fill="#c92a2a" {FONT}>⚠ N%: other processes used N % '
        f"of the machine during that run (over {LOAD_WARNING_PCT:.0f} %: the number is unreliable)</text>",
    ]
    return "\n".join(head + body + ["</svg>"]) + "\n"


def write(path, summaries, scenario_order, server_order, subtitle=""):
    """Writes the chart to `path`."""
    with open(path, "w") as f:
        f.write(render(summaries, scenario_order, server_order, subtitle))
