"""Swiss-Prot ``FT`` lines -> feature rows (``swissprot_features``), with their residue concept.

The parser reads the feature table as UniProt writes it, independently of Biopython (whose
locations it must equal; tests check that on real records): new-style lines (type in columns
6-13, location from column 22, qualifiers ``/name="value"`` on continuation lines, a value
may run over several lines) and old-style lines (from/to in columns 15-27, a description
from column 35, ``/FTId=`` on its own continuation line).

Locations are ``n..m``, ``n``, ``?``, ``?n``, ``<n``, ``>m``, with an optional isoform prefix
(``P12345-2:10..20``); a ``join(a,b,...)`` gives one row per part. Positions are 1-based and
inclusive as in UniProt. An end that is not exact (``<``, ``>``, ``?``) is kept as written and
flagged (``start_uncertain``/``end_uncertain``); an unknown one (``?``) is null, never guessed.

Concepts (method.md, "Residue concepts"): a feature type refined by the qualifier that names
its kind (``BINDING:Zn(2+)``, ``MOTIF:planted motif IPRZ00001.m1``, ``MOD_RES:Phosphoserine``)
or a plain type (``TRANSMEM``). Other types (CHAIN, VARIANT, CONFLICT, ...) and features
located on another isoform have no concept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

SWISSPROT_FEATURES_SCHEMA = pa.schema(
    [
        pa.field("accession", pa.string()),
        pa.field("type", pa.string()),
        pa.field("start", pa.int32()),
        pa.field("end", pa.int32()),
        pa.field("start_uncertain", pa.bool_()),
        pa.field("end_uncertain", pa.bool_()),
        pa.field("concept", pa.string()),
        pa.field("qualifiers", pa.string()),
    ]
)

# Types refined by the qualifier that names their kind, and the part of its value kept.
REFINED_BY = {
    "BINDING": "ligand",
    "DOMAIN": "note",
    "REGION": "note",
    "MOTIF": "note",
    "REPEAT": "note",
    "ZN_FING": "note",
    "MOD_RES": "note",
    "CARBOHYD": "note",
    "LIPID": "note",
}
PLAIN_TYPES = frozenset(
    {
        "ACT_SITE",
        "SITE",
        "SIGNAL",
        "TRANSIT",
        "TRANSMEM",
        "INTRAMEM",
        "DISULFID",
        "HELIX",
        "STRAND",
        "TURN",
        "COILED",
        "COMPBIAS",
    }
)
# Concepts whose residues are the feature's two ends, not the range between them.
END_RESIDUE_TYPES = frozenset({"DISULFID"})
# Modifications name the modified residue first ("Phosphoserine; by PKA"): keep that part.
MODIFICATION_TYPES = frozenset({"MOD_RES", "CARBOHYD", "LIPID"})
# Numbered instances of one kind ("ANK 3", "C2H2-type 2") are one concept.
_INSTANCE_NUMBER = re.compile(r"\s+\d+$")
_POSITION = re.compile(r"^([<>?]?)(\d*)$")
_QUALIFIER = re.compile(r'^/([a-z_]+)="')


class FeatureError(ValueError):
    """An FT line that cannot be read; the caller adds the file and the accession."""

    def __init__(self, line_number: int, line: str, problem: str) -> None:
        super().__init__(f"line {line_number} {line.rstrip()!r}: {problem}")
        self.line_number = line_number


@dataclass(frozen=True)
class Location:
    """One contiguous location: 1-based inclusive ends (None where unknown), their flags."""

    start: int | None
    end: int | None
    start_uncertain: bool
    end_uncertain: bool
    isoform: str | None = None


def _position(text: str) -> tuple[int | None, bool]:
    match = _POSITION.match(text)
    if not match or (not match.group(2) and match.group(1) != "?"):
        raise ValueError(f"cannot read position {text!r}")
    fuzzy, digits = match.groups()
    return (int(digits) if digits else None), bool(fuzzy)


def parse_location(text: str) -> list[Location]:
    """The parts of an FT location string (one part unless it is a ``join``)."""
    text = text.strip()
    if text.startswith("join(") and text.endswith(")"):
        return [part for piece in text[5:-1].split(",") for part in parse_location(piece)]
    isoform = None
    if ":" in text:
        isoform, text = text.split(":", 1)
        if not isoform:
            raise ValueError("empty isoform before ':'")
    ends = text.split("..")
    if len(ends) > 2:
        raise ValueError(f"cannot read location {text!r}")
    start, start_uncertain = _position(ends[0])
    end, end_uncertain = _position(ends[-1])
    if start is not None and end is not None and end < start:
        raise ValueError(f"location {text!r} ends before it starts")
    if start == 0 or end == 0:
        raise ValueError(f"location {text!r}: positions start at 1")
    return [Location(start, end, start_uncertain, end_uncertain, isoform)]


def concept_name(feature_type: str, qualifiers: dict[str, str]) -> str | None:
    """The residue concept of a feature, or None when its type is not a concept."""
    if feature_type in PLAIN_TYPES:
        return feature_type
    key = REFINED_BY.get(feature_type)
    if key is None:
        return None
    value = qualifiers.get(key) or qualifiers.get("description", "")
    if feature_type in MODIFICATION_TYPES:
        value = value.split(";")[0]
    value = _INSTANCE_NUMBER.sub("", value.strip().rstrip(".").strip())
    return f"{feature_type}:{value}" if value else feature_type


@dataclass
class _Feature:
    type: str
    locations: list[Location]
    line_number: int
    line: str
    qualifiers: dict[str, str] = field(default_factory=dict)
    old_style: bool = False
    open_key: str | None = None  # a quoted value that continues on the next line


class FeatureTableParser:
    """Collects one record's FT lines (``add``) and turns them into feature rows (``rows``).

    A line that cannot be read goes to ``on_error`` as a :class:`FeatureError`: raise it to
    stop, or return to leave that feature out (its remaining lines are passed over).
    """

    def __init__(self, on_error: Callable[[FeatureError], None]) -> None:
        self.features: list[_Feature] = []
        self.on_error = on_error
        self._discarding = False

    def add(self, line: str, line_number: int) -> None:
        """Take one ``FT`` line."""
        line = line.rstrip("\r\n")
        name = line[5:13].rstrip()
        if not name and self._discarding:
            return
        self._discarding = False
        try:
            if name:
                self._close_last()
                self._start(line, line_number, name)
            elif not self.features:
                raise ValueError("continuation line before any feature")
            else:
                self._continue(line)
        except ValueError as exc:
            self._discard(FeatureError(line_number, line, str(exc)), bool(name))

    def _discard(self, error: FeatureError, starting: bool) -> None:
        # Before on_error, so a caller that skips finds the parser ready for the next feature.
        if not starting and self.features:
            self.features.pop()
        self._discarding = True
        self.on_error(error)

    def _start(self, line: str, line_number: int, name: str) -> None:
        old_style = line[13:21].strip() != ""
        if old_style:  # from and to in columns 15-20 and 22-27, a description after
            start, end = line[14:20].strip(), line[21:27].strip()
            locations = parse_location(f"{start}..{end}" if end else start)
            qualifiers = {"description": line[34:75].rstrip()}
        else:  # the location from column 22, qualifiers on the lines that follow
            locations = parse_location(line[21:])
            qualifiers = {}
        self.features.append(_Feature(name, locations, line_number, line, qualifiers, old_style))

    def _continue(self, line: str) -> None:
        feature = self.features[-1]
        if feature.old_style:
            text = line[34:75].rstrip()
            if text.startswith("/FTId="):
                feature.qualifiers["id"] = text[6:].rstrip(".")
                return
            old = feature.qualifiers["description"]
            feature.qualifiers["description"] = old + ("" if old.endswith("-") else " ") + text
            return
        value = line[21:].rstrip()
        if feature.open_key is not None:
            key, closed = feature.open_key, value.endswith('"')
            old = feature.qualifiers[key]
            glue = "" if key == "evidence" or old.endswith("-") else " "
            feature.qualifiers[key] = old + glue + (value[:-1] if closed else value)
            feature.open_key = None if closed else key
            return
        match = _QUALIFIER.match(value)
        if not match:
            raise ValueError('expected a qualifier /name="value"')
        key, rest = match.group(1), value[match.end() :]
        if key in feature.qualifiers:
            raise ValueError(f"qualifier /{key} given twice")
        closed = rest.endswith('"')
        feature.qualifiers[key] = rest[:-1] if closed else rest
        feature.open_key = None if closed else key

    def _close_last(self) -> None:
        last = self.features[-1] if self.features else None
        if last is not None and last.open_key is not None:
            self.features.pop()
            self.on_error(
                FeatureError(
                    last.line_number,
                    last.line,
                    f"the /{last.open_key} value of this feature has no closing quote",
                )
            )

    def rows(self, accession: str, length: int) -> list[dict]:
        """The record's features as ``swissprot_features`` rows; a location past the sequence
        (``length`` residues) goes to ``on_error`` and its feature is left out."""
        self._close_last()
        rows = []
        for feature in self.features:
            parts = []
            for part, loc in enumerate(feature.locations):
                on_this_sequence = loc.isoform is None or loc.isoform == accession
                if on_this_sequence and max(loc.start or 0, loc.end or 0) > length:
                    self.on_error(
                        FeatureError(
                            feature.line_number,
                            feature.line,
                            f"location runs past the sequence ({length} residues)",
                        )
                    )
                    parts = []
                    break
                qualifiers = dict(feature.qualifiers)
                if loc.isoform is not None:
                    qualifiers["isoform"] = loc.isoform
                if len(feature.locations) > 1:
                    qualifiers["join_part"] = f"{part + 1}/{len(feature.locations)}"
                concept = concept_name(feature.type, feature.qualifiers)
                parts.append(
                    {
                        "accession": accession,
                        "type": feature.type,
                        "start": loc.start,
                        "end": loc.end,
                        "start_uncertain": loc.start_uncertain,
                        "end_uncertain": loc.end_uncertain,
                        "concept": concept if on_this_sequence else None,
                        "qualifiers": json.dumps(qualifiers, sort_keys=True),
                    }
                )
            rows.extend(parts)
        return rows


def features_table(rows: list[dict]) -> pa.Table:
    """``swissprot_features`` from rows (an empty list gives an empty, valid table)."""
    return pa.Table.from_pylist(rows, schema=SWISSPROT_FEATURES_SCHEMA)
