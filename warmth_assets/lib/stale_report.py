"""Stale partitions in words: what `warmth stale` prints and the partitions_current checks show.

Dagster's resolver decides what is stale (warmth_assets/staleness.py asks it); this module only names the
reasons a person acts on. A root cause is one of Dagster's `StaleCause`s reduced to plain values:

- CODE on the partition itself: its code version changed, i.e. a setting, prompt or rule it reads
  (warmth_assets/code_versions.py) is no longer what it was materialised with;
- DATA: an input was updated (a new data version) since, or was never materialised when this was;
- DEPENDENCIES: the asset gained or lost an input since.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

CODE, DATA, DEPENDENCIES = "CODE", "DATA", "DEPENDENCIES"
KINDS = {CODE: "code version changed", DATA: "input updated", DEPENDENCIES: "inputs changed"}
TABLE_ROWS = 100  # rows of the check's Markdown table; the full list is in its `stale_keys`


@dataclass(frozen=True)
class Cause:
    """One root cause, as Dagster reports it: on `asset` [`partition`], `reason`, through `dependency`."""

    category: str
    reason: str
    asset: str
    partition: str | None = None
    dependency: str | None = None
    dependency_partition: str | None = None


@dataclass(frozen=True)
class StalePartition:
    partition: str | None  # None: an unpartitioned asset
    causes: tuple[Cause, ...]


@dataclass(frozen=True)
class AssetStaleness:
    """One asset: its current code version, what was looked at, what is stale."""

    asset: str
    code_version: str | None
    partitioned: bool
    checked: int  # partitions materialised by a run and looked at
    imported: int = 0  # partitions recorded without a run (imported outputs): not the code's to re-run
    stale: tuple[StalePartition, ...] = ()
    reads: tuple[str, ...] = field(default=())  # the settings its code version hashes (code_versions.READS)


def _where(asset: str, partition: str | None) -> str:
    return f"{asset} [{partition}]" if partition else asset


def describe(cause: Cause, asset: str, partition: str | None, reads: tuple[str, ...] = ()) -> str:
    """One cause in a line, for the partition `asset` [`partition`]."""
    kind = KINDS.get(cause.category, cause.category.lower())
    own = cause.asset == asset and cause.partition == partition
    if cause.category == CODE and own:
        said = ", ".join(r or "the whole configuration" for r in reads)
        return f"{kind}: a setting, prompt or rule it reads changed" + (f" (it reads {said})" if said else "")
    subject = "" if own else _where(cause.asset, cause.partition) + " "
    through = f" ({_where(cause.dependency, cause.dependency_partition)})" if cause.dependency else ""
    return f"{kind}: {subject}{cause.reason}{through}"


def why(stale: StalePartition, asset: AssetStaleness) -> str:
    """Every cause of one stale partition, `; `-joined."""
    return "; ".join(describe(c, asset.asset, stale.partition, asset.reads) for c in stale.causes) or "stale"


def kind_counts(asset: AssetStaleness) -> dict[str, int]:
    """{kind of cause: stale partitions with it}."""
    return dict(Counter(KINDS.get(c, c.lower()) for s in asset.stale for c in sorted({x.category for x in s.causes})))


def report_lines(assets: list[AssetStaleness]) -> list[str]:
    """What `warmth stale` prints: per asset with stale partitions, a header and one line per partition, then
    a summary line (the same whether or not anything is stale, so a script can read the last line)."""
    lines: list[str] = []
    width = max((len(s.partition or "") for a in assets for s in a.stale), default=0)
    for asset in assets:
        if not asset.stale:
            continue
        of = f"{len(asset.stale)} of {asset.checked} materialised partition{'s' * (asset.checked != 1)} stale" \
            if asset.partitioned else "stale"
        lines.append(f"{asset.asset} (code version {asset.code_version or 'none'}): {of}")
        for stale in asset.stale:
            label = stale.partition if asset.partitioned else "-"
            lines.append(f"  {label:<{width}}  {why(stale, asset)}")
    partitions = sum(len(a.stale) for a in assets)
    stale_assets = sum(1 for a in assets if a.stale)
    checked = sum(a.checked for a in assets)
    imported = sum(a.imported for a in assets)
    skipped = f"; {imported} imported partition{'s' * (imported != 1)} not checked" if imported else ""
    if partitions:
        lines.append(f"{partitions} stale partition{'s' * (partitions != 1)} in {stale_assets} "
                     f"asset{'s' * (stale_assets != 1)} ({checked} checked in {len(assets)} assets{skipped}): "
                     "re-materialise them (the asset's partitions tab, a backfill) or set "
                     "[operations] rematerialize_stale = true")
    else:
        lines.append(f"nothing stale ({checked} materialised partitions checked in {len(assets)} assets{skipped})")
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # multi-partition keys hold `|`, a column break in a Markdown table


def check_table(asset: AssetStaleness, rows: int = TABLE_ROWS) -> str:
    """The check's Markdown table: partition | why (the first `rows`, then how many more)."""
    if not asset.stale:
        return "no stale partition"
    lines = ["| partition | why |", "|---|---|"]
    for stale in asset.stale[:rows]:
        lines.append(f"| {_cell(stale.partition or '-')} | {_cell(why(stale, asset))} |")
    if len(asset.stale) > rows:
        lines.append(f"| ... | {len(asset.stale) - rows} more: `warmth stale --select {asset.asset}` |")
    return "\n".join(lines)
