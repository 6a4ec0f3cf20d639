"""Date filters typed day first (dd-mm-yyyy): the browser's own date input follows its locale,
which showed a trader in India mm/dd/yyyy."""

from __future__ import annotations

from datetime import date

from ats_app.engine.core.clock import parse_day


def day_or_none(text: str) -> date | None:
    """The day typed, or None when empty or not a date (`day_errors` names that case)."""
    try:
        return parse_day(text)
    except ValueError:
        return None


def day_errors(form: dict[str, str], labels: dict[str, str]) -> str:
    """What is wrong with the form's date fields (`labels`: field -> its label), or ""."""
    problems = []
    for name, label in labels.items():
        try:
            parse_day(form.get(name, ""))
        except ValueError as exc:
            problems.append(f"{label}: {exc}")
    return "; ".join(problems)
