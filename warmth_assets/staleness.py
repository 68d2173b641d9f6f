"""Stale partitions as Dagster itself decides them, per partition (docs/pitfalls.md §2.7).

Dagster 1.13's `CachingStaleStatusResolver` (what the UI's GraphQL `staleStatus`/`staleCauses` call) answers per
partition, but the UI asks it per asset, and for a partitioned asset without a partition it answers FRESH. Here
every materialised partition is asked, with the root causes the UI would show (`get_stale_root_causes`).
`warmth stale`, the partitions_current checks and the opt-in automation ([operations] rematerialize_stale) all
ask through this module; nothing here decides staleness itself.

Partitions whose latest materialisation was recorded without a run (`warmth import-outputs`) are left out and
counted: Dagster calls them stale (their inputs were never materialised), but they are released results, not
something this code location can re-run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import dagster as dg
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleCause, StaleStatus
from dagster._time import get_current_datetime

from warmth_assets.lib.stale_report import AssetStaleness, Cause, StalePartition


def resolver(instance: dg.DagsterInstance, asset_graph: BaseAssetGraph,
             view: AssetGraphView | None = None) -> CachingStaleStatusResolver:
    """Dagster's resolver over `asset_graph` (an automation evaluation passes its own view: one read of the log)."""
    if view is None:
        view = AssetGraphView(temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
                              instance=instance, asset_graph=asset_graph)
    return CachingStaleStatusResolver(instance, asset_graph, view,
                                      instance_queryer=view.get_inner_queryer_for_back_compat())


def latest_run_ids(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str | None, str]:
    """{partition (None: unpartitioned): the run id of its latest materialisation, "" when recorded without a run}."""
    latest: dict[str | None, str] = {}
    cursor = None
    while True:
        page = instance.fetch_materializations(key, limit=1000, cursor=cursor)
        for record in page.records:  # newest first
            latest.setdefault(record.partition_key, record.run_id)
        if not page.has_more:
            return latest
        cursor = page.cursor


def _cause(cause: StaleCause) -> Cause:
    dependency = cause.dependency
    return Cause(category=cause.category.value, reason=cause.reason, asset=cause.asset_key.to_user_string(),
                 partition=cause.partition_key,
                 dependency=dependency.asset_key.to_user_string() if dependency else None,
                 dependency_partition=dependency.partition_key if dependency else None)


def stale_among(stale_resolver: CachingStaleStatusResolver, key: dg.AssetKey,
                partitions: Iterable[str | None]) -> list[StalePartition]:
    """The partitions of `partitions` the resolver marks STALE, each with its root causes."""
    return [StalePartition(p, tuple(_cause(c) for c in stale_resolver.get_stale_root_causes(key, p)))
            for p in partitions if stale_resolver.get_status(key, p) == StaleStatus.STALE]


def scan_asset(instance: dg.DagsterInstance, stale_resolver: CachingStaleStatusResolver, key: dg.AssetKey,
               reads: tuple[str, ...] = ()) -> AssetStaleness:
    node = stale_resolver.asset_graph.get(key)
    runs = latest_run_ids(instance, key)
    produced = sorted((p for p, run in runs.items() if run), key=lambda p: p or "")
    return AssetStaleness(
        asset=key.to_user_string(), code_version=node.code_version, partitioned=node.is_partitioned,
        checked=len(produced), imported=sum(1 for run in runs.values() if not run),
        stale=tuple(stale_among(stale_resolver, key, produced)), reads=reads)


def scan(instance: dg.DagsterInstance, asset_graph: BaseAssetGraph, keys: Iterable[dg.AssetKey] | None = None,
         reads: Callable[[str], tuple[str, ...]] = lambda asset: ()) -> list[AssetStaleness]:
    """Each asset of `keys` (default: every materialisable asset), in lineage order."""
    wanted = set(asset_graph.materializable_asset_keys if keys is None else keys)
    stale_resolver = resolver(instance, asset_graph)
    return [scan_asset(instance, stale_resolver, key, reads(key.to_user_string()))
            for key in asset_graph.toposorted_asset_keys if key in wanted]
