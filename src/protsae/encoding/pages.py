"""Static HTML pages of encoded sequences: residues coloured by one latent at a time, every
active latent listed.

Colours are on each latent's own scale: a residue's shade is its value / the latent's maximum
over the train split of the evaluation set (when the SAE's latent tables exist; otherwise the
sequence's own maximum, said on the page), so a weak hit looks weak. A switcher (radio buttons
and CSS, no script) shows the track of any of the :data:`SWITCHER_LATENTS` strongest latents.
Pages load nothing: no scripts, fonts or styles from elsewhere, and a Content-Security-Policy
that forbids any fetch. Every id, name and annotation is HTML-escaped. Latents link to the
feature browser's page for them, ``results/browser/latent.html#sae=L{layer}-k{k}-w{width}&latent={n}``
(the browser's layout in docs/design.md), when that page exists; :func:`browser_link` is the one
place that knows the layout.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from protsae.encoding.types import SaeFolder, SequenceLatents

_CSP = "default-src 'none'; style-src 'unsafe-inline'"
_STYLE = """
body{font-family:sans-serif;margin:1.5em;max-width:70em}
.seq{font-family:monospace;font-size:15px;line-height:1.9;word-break:break-all}
.seq span{padding:1px 0}
table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}
.chosen{font-weight:bold}
"""


def page_name(seq_id: str, taken: set[str]) -> str:
    """A file name for ``seq_id`` that is safe on every file system and unique among ``taken``."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", seq_id).lstrip(".")[:100] or "sequence"
    name, n = f"{stem}.html", 1
    while name.lower() in taken:
        n += 1
        name = f"{stem}-{n}.html"
    taken.add(name.lower())
    return name


def browser_link(sae: SaeFolder, latent: int, page_dir: Path) -> str | None:
    """Relative URL of the browser's page for ``latent``, or None when there is no browser."""
    page = sae.browser_page
    if page is None or not page.is_file():
        return None
    where = quote(os.path.relpath(page, page_dir).replace(os.sep, "/"))
    return f"{where}#sae=L{sae.layer}-{quote(sae.name)}&latent={latent}"


#: Latents a page can switch between (the strongest, by fraction of their own maximum).
SWITCHER_LATENTS = 20


def _colour(value: float, vmax: float) -> str:
    alpha = 0.0 if vmax <= 0 else min(1.0, value / vmax)
    return f"rgba(214,39,40,{alpha:.3f})"


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return escape(f"{value:.3g}" if isinstance(value, float) else str(value))


def _track_html(item: SequenceLatents, latent: int, scale: float) -> str:
    track = item.track(latent)
    return "".join(
        f'<span style="background:{_colour(float(track[pos]), scale)}" '
        f'title="{pos} {escape(aa)}: {float(track[pos]):.3g}">{escape(aa)}</span>'
        for pos, aa in enumerate(item.sequence)
    )


_ROW_KEYS = (
    "max_value",
    "fraction_of_latent_max",
    "argmax",
    "n_active",
    "pattern_class",
    "family",
    "f1",
    "predicted_member",
)


def _switcher(
    item: SequenceLatents, notes: dict[int, dict], shown: list[int], latent: int | None
) -> tuple[list[str], list[str], str]:
    """(radio buttons, one shaded track per latent, the CSS that shows the checked one)."""
    radios, tracks, rules = [], [], []
    for lat in shown:
        latent_max = notes.get(lat, {}).get("latent_max")
        scale = float(latent_max) if latent_max else float(item.track(lat).max())
        basis = f"latent max {scale:.3g}" if latent_max else f"this sequence's max {scale:.3g}"
        checked = " checked" if lat == latent else ""
        radios.append(
            f'<input type="radio" name="latent" id="l{lat}"{checked}>'
            f'<label for="l{lat}">{lat}</label>'
        )
        tracks.append(
            f'<div class="track t{lat}"><p>latent {lat}, shaded by value / {basis}</p>'
            f'<p class="seq">{_track_html(item, lat, scale)}</p></div>'
        )
        rules.append(f"#l{lat}:checked~.tracks .t{lat}{{display:block}}")
    return radios, tracks, ".track{display:none}" + "".join(rules)


def _latent_rows(
    ranked: list[dict], sae: SaeFolder, page_dir: Path, latent: int | None
) -> list[str]:
    rows = []
    for row in ranked:
        link = browser_link(sae, row["latent"], page_dir)
        label = str(row["latent"])
        label = f'<a href="{escape(link, quote=True)}">{label}</a>' if link else label
        chosen = ' class="chosen"' if row["latent"] == latent else ""
        cells = [label] + [_cell(row[key]) for key in _ROW_KEYS]
        rows.append(f"<tr{chosen}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return rows


def render_page(
    item: SequenceLatents,
    sae: SaeFolder,
    notes: dict[int, dict],
    latent: int | None,
    page_dir: Path,
) -> str:
    """One sequence's page; ``latent`` is the track shown first (default: the strongest by
    fraction of its own maximum); the switcher offers the strongest SWITCHER_LATENTS."""
    from protsae.encoding.inputs import ranked_latents

    ranked = ranked_latents(item, notes)
    if latent is None and ranked:
        latent = ranked[0]["latent"]
    shown = [r["latent"] for r in ranked[:SWITCHER_LATENTS]]
    if latent is not None and latent not in shown:
        shown.insert(0, latent)
    radios, tracks, switch_css = _switcher(item, notes, shown, latent)
    rows = _latent_rows(ranked, sae, page_dir, latent)
    title = escape(item.id)
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            f"<title>{title}</title><style>{_STYLE}{switch_css}</style></head><body>",
            f"<h1>{title}</h1>",
            f"<p>{len(item.sequence)} residues; SAE {escape(sae.model)} layer {sae.layer} "
            f"{escape(sae.name)}. Residues shaded by one latent on that latent's own scale; "
            "position 0-based. Choose the latent:</p>",
            '<div class="switcher">' if shown else "<p>no active latent</p>",
            *radios,
            '<div class="tracks">',
            *tracks,
            "</div>",
            "</div>" if shown else "",
            "<h2>Active latents</h2>",
            "<table><tr><th>latent</th><th>max</th><th>fraction of latent max</th><th>argmax</th>"
            "<th>active residues</th><th>pattern class</th><th>family</th><th>F1</th>"
            "<th>predicted member</th></tr>",
            *rows,
            "</table>",
            '<p><a href="index.html">all sequences</a></p>',
            "</body></html>",
            "",
        ]
    )


class HtmlPages:
    """Pages written into a temporary folder beside ``out``, moved onto ``out`` by :meth:`commit`."""

    def __init__(
        self, out: Path, sae: SaeFolder, notes: dict[int, dict], latent: int | None = None
    ) -> None:
        self.out = Path(out)
        self.sae, self.notes, self.latent = sae, notes, latent
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(
            tempfile.mkdtemp(prefix=f".{self.out.name}.", suffix=".part", dir=self.out.parent)
        )
        self.taken: set[str] = {"index.html"}
        self.index: list[tuple[str, str, int, int]] = []

    def add(self, item: SequenceLatents) -> None:
        """Write ``item``'s page."""
        name = page_name(item.id, self.taken)
        text = render_page(item, self.sae, self.notes, self.latent, self.out)
        (self.tmp / name).write_text(text, encoding="utf-8")
        self.index.append((name, item.id, len(item.sequence), len(set(item.latents.tolist()))))

    def commit(self) -> None:
        """Write the index and replace ``out`` (a previous run's pages) with the new folder."""
        rows = "".join(
            f'<tr><td><a href="{escape(quote(name), quote=True)}">{escape(seq_id)}</a></td>'
            f"<td>{length}</td><td>{n}</td></tr>"
            for name, seq_id, length, n in self.index
        )
        (self.tmp / "index.html").write_text(
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            f"<title>encoded sequences</title><style>{_STYLE}</style></head><body>"
            f"<h1>{len(self.index)} sequences</h1>"
            "<table><tr><th>id</th><th>residues</th><th>active latents</th></tr>"
            f"{rows}</table></body></html>\n",
            encoding="utf-8",
        )
        os.chmod(self.tmp, 0o755)
        old = None
        if self.out.exists():
            old = self.out.with_name(f".{self.out.name}.old-{os.getpid()}")
            os.replace(self.out, old)
        os.replace(self.tmp, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        """Remove the temporary folder."""
        shutil.rmtree(self.tmp, ignore_errors=True)
