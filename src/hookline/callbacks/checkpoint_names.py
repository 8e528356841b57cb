"""ModelCheckpoint's file names: templates checked when built, filled at each save, versioned.

A template may use ``{epoch}``, ``{step}``, ``{batch}`` (the run's counters, integers) and any
metric of ``trainer.metrics``, with format specs. What can be checked without a run is checked
at construction (syntax, attribute or index access, positional fields, the counters' format
specs); a metric the run does not log raises at the save that needs it, never skips it.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["COUNTERS", "check_template", "fill_template", "insert_names", "versioned"]

COUNTERS = ("epoch", "step", "batch")


def check_template(template: str, owner: str, option: str) -> list[str]:
    """The fields of ``template``; a ValueError naming ``owner(option=...)`` when it is not a
    template ModelCheckpoint can fill."""
    where = f"{owner}({option}={template!r})"
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(f"{where} is not a valid template ({error}); write fields as "
                         f"{{epoch}}, {{step}} or {{val_loss:.2f}} and double literal "
                         f"braces") from None
    fields = []
    for _, field, spec, _ in parsed:
        if field is None:
            continue
        if not field:
            raise ValueError(f"{where} has an empty field {{}}; name what to insert: "
                             f"{{epoch}}, {{step}}, {{batch}} or a metric")
        if field.isdigit() or any(mark in field for mark in ".[]"):
            raise ValueError(f"{where} has the field {{{field}}}, which ModelCheckpoint cannot "
                             f"fill: fields are plain names, {', '.join(COUNTERS)} or a metric "
                             f"of trainer.metrics (no positions, attributes or indexes)")
        if field in COUNTERS and spec:
            try:
                format(0, spec)
            except ValueError as error:
                raise ValueError(f"{where}: {{{field}:{spec}}} is not a format for an integer "
                                 f"({error}); use e.g. {{{field}:03d}}") from None
        fields.append(field)
    return fields


def fill_template(template: str, fields: list[str], values: Mapping[str, Any],
                  mid_epoch: bool) -> str:
    """``template`` filled from ``values``; a field that is not there raises a ValueError
    naming it and what is there."""
    missing = [field for field in fields if field not in values]
    if missing:
        metrics = sorted(name for name in values if name not in COUNTERS)
        hint = ("Mid-epoch saves see the metrics logged so far: validation metrics appear "
                "after the first validation; give monitor= that metric to wait for it, or drop "
                "the field." if mid_epoch else
                "Use one of them (validation metrics need val_data).")
        raise ValueError(f"ModelCheckpoint's template {template!r} names {missing[0]!r}, which "
                         f"is not among the values available at this save: "
                         f"{', '.join(COUNTERS)} and the metrics {metrics}. {hint}")
    try:
        return template.format(**values)
    except (ValueError, TypeError) as error:
        raise ValueError(f"ModelCheckpoint's template {template!r} could not be filled with "
                         f"this save's values ({error}); check each field's format spec "
                         f"against its value's type") from None


def insert_names(template: str) -> str:
    """``{epoch}-{val_loss:.2f}`` -> ``epoch={epoch}-val_loss={val_loss:.2f}`` (Lightning)."""
    out = []
    for literal, field, spec, conversion in string.Formatter().parse(template):
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if field is None:
            continue
        conv = f"!{conversion}" if conversion else ""
        fmt = f":{spec}" if spec else ""
        if literal.endswith(f"{field}="):
            out.append(f"{{{field}{conv}{fmt}}}")
        else:
            out.append(f"{field}={{{field}{conv}{fmt}}}")
    return "".join(out)


def versioned(path: Path, version: int) -> Path:
    """``m-3.pt`` -> ``m-3-v1.pt`` (Lightning's spelling of a repeated name)."""
    return path.with_name(f"{path.stem}-v{version}{path.suffix}")
