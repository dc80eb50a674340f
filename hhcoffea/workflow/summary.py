"""The short summary every run ends with: events in and out per dataset, excluded events, time,
throughput, files skipped and why, and what the weights divide by."""

from __future__ import annotations

from rich.table import Table

__all__ = ["normalisation_lines", "summary_table"]


def summary_table(result, job) -> Table:
    """Events in/out per dataset, time, throughput, files skipped and why."""
    out = result.output
    first_pairer = next(iter(job.config["pairers"]))
    table = Table(title=f"hhcoffea run: {job.config['name']}" + (" (quick test)" if result.quick else ""))
    for col in ("dataset", "files", "events in", "processed", "excluded (NaN/inf)", "four-tag",
                f"SR ({first_pairer})", "SR weighted"):
        table.add_column(col, justify="right" if col != "dataset" else "left")
    for name, entry in result.fileset.coffea.items():
        n_files = len(entry["files"])
        processed = int(out["events_in"].get(name, 0))
        excluded = int(out.get("excluded", {}).get(name, {}).get("nonfinite_kinematics", 0))
        flow = out["cutflow"].get(name, {}).get(first_pairer, {}).get("nonresonant", {})
        four = int(flow["four_tag"][0]) if "four_tag" in flow else 0
        sr_n = int(flow["signal_region"][0]) if "signal_region" in flow else 0
        sr_w = float(flow["signal_region"][1]) if "signal_region" in flow else 0.0
        table.add_row(name, str(n_files), f"{result.expected_events(name):,}", f"{processed:,}", f"{excluded:,}",
                      f"{four:,}", f"{sr_n:,}", f"{sr_w:.4g}")
    # throughput counts only the events this run processed itself, not those of reused checkpoints
    n = getattr(result, "events_computed", result.events_processed)
    table.caption = (
        f"{n:,} events in {result.seconds:.1f} s = {n / max(result.seconds, 1e-9):,.0f} events/s; "
        f"files skipped: {len(result.fileset.skipped)}"
    )
    reused, lost = getattr(result, "chunks_reused", 0), getattr(result, "workers_lost", 0)
    if reused or getattr(result, "chunks_computed", None) is not None:
        table.caption += (f"; chunks reused from checkpoints: {reused:,} ({result.events_reused:,} events), "
                          f"computed: {result.chunks_computed or 0:,}")
    if lost:
        table.caption += f"; workers lost: {lost} (their chunks were redone)"
    return table


def normalisation_lines(result) -> list[str]:
    """One line per dataset whose weights do not stand for all of its generated events."""
    lines = []
    for name, norm in result.output.get("normalisation", {}).items():
        fraction = norm.get("fraction")
        if fraction is None or abs(fraction - 1.0) < 1e-12:
            continue
        if norm["mode"] == "processed":
            lines.append(f"{name}: weights divide by the {norm['n_processed']:,} events processed "
                         f"({fraction:.1%} of n_generated = {norm['n_generated']:,}; normalise: processed)")
        else:
            lines.append(f"{name}: weights divide by n_generated = {norm['n_generated']:,}, but {norm['n_processed']:,} "
                         f"events ({fraction:.1%}) were processed: yields are short by that fraction "
                         "(set normalise: processed to divide by the events read)")
    return lines
