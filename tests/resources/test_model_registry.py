"""The registry layer: typed rows in and out of `model_registry`, the three ways of writing them, moving targets."""

import pytest

from resources import model_registry
from resources.warehouse import WarehouseResource
from warmth_assets.lib.registry import ModelRow, registry_frame


def _row(slug: str, **changes) -> ModelRow:
    fields = dict(slug=slug, source_kind="openai", source=slug, family="gpt", chat_template="model", access="api",
                  styles=["warm"], checkpoints=["original", "warm-e1", "warm-prompt"])
    return ModelRow(**{**fields, **changes})


@pytest.fixture
def warehouse(tmp_path) -> WarehouseResource:
    return WarehouseResource(database=str(tmp_path / "w.duckdb"))


def test_a_row_round_trips_typed(warehouse):
    row = _row("gpt-4o-2024-08-06", styles=["warm", "cold"], moving_target=True, origin="sensor")
    assert model_registry.upsert(warehouse, [row]) == 1
    back = model_registry.read_row(warehouse, "gpt-4o-2024-08-06")
    assert back == row and isinstance(back.styles, list) and back.moving_target is True
    assert back.added_at is not None  # the warehouse dates the registration
    assert back.epochs("warm") == [1.0] and back.epochs("cold") == []


def test_a_row_reads_as_the_dict_it_replaces():
    """Callers that took registry rows as dicts (runner_for, discovery) keep working on ModelRow."""
    row = _row("m")
    assert row["source"] == "m" and row.get("chat_template") == "model" and row.get("added_at") is None
    assert dict(row) == {"slug": "m", "source_kind": "openai", "source": "m", "family": "gpt", "chat_template": "model",
                         "access": "api", "styles": ["warm"], "checkpoints": ["original", "warm-e1", "warm-prompt"],
                         "moving_target": False, "origin": "config"}
    assert ModelRow.from_mapping(dict(row)) == row
    assert row != _row("m", source="other")
    assert registry_frame([]).columns.tolist() == list(row)


def test_a_row_holds_every_column_of_the_table_the_warehouse_defines(warehouse):
    # The outside reference: the table sql/001_model_registry.sql creates (the warehouse keeps the dates).
    table = warehouse.query_df("SELECT * FROM model_registry LIMIT 0").columns.tolist()
    assert list(_row("m")) == [c for c in table if c not in ("added_at", "updated_at")]


def test_the_configuration_updates_every_column_and_keeps_added_at(warehouse):
    model_registry.upsert(warehouse, [_row("m")])
    first = model_registry.read_row(warehouse, "m")
    model_registry.upsert(warehouse, [_row("m", family="gpt-4o", styles=["cold"], checkpoints=["original"])])
    second = model_registry.read_row(warehouse, "m")
    assert (second.family, second.styles, second.checkpoints) == ("gpt-4o", ["cold"], ["original"])
    assert second.added_at == first.added_at


def test_the_sensor_never_overwrites_a_row(warehouse):
    model_registry.upsert(warehouse, [_row("m", family="hand-written")])
    model_registry.upsert(warehouse, [_row("m", family="discovered"), _row("n")], update=())
    assert [(r.slug, r.family) for r in model_registry.read_rows(warehouse)] == [("m", "hand-written"), ("n", "gpt")]


def test_the_importer_updates_only_where_outputs_come_from(warehouse):
    model_registry.upsert(warehouse, [_row("m", family="configured")])
    model_registry.upsert(warehouse, [_row("m", family="m", source="/release/m", checkpoints=["original"],
                                           origin="import")], update=("source", "checkpoints", "origin"))
    row = model_registry.read_row(warehouse, "m")
    assert (row.family, row.source, row.checkpoints, row.origin) == ("configured", "/release/m", ["original"], "import")
    assert row.imported
    with pytest.raises(ValueError, match="slug"):
        model_registry.upsert(warehouse, [row], update=("slug",))


def test_moving_targets_are_the_marked_models_at_the_asked_checkpoints(warehouse):
    model_registry.upsert(warehouse, [
        _row("b-alias", moving_target=True), _row("a-alias", moving_target=True), _row("pinned"),
        _row("imported", moving_target=True, origin="import"),
    ])
    assert model_registry.moving_targets(warehouse, ["original", "warm-prompt"]) == [
        ("a-alias", "original"), ("a-alias", "warm-prompt"), ("b-alias", "original"), ("b-alias", "warm-prompt")]
    assert model_registry.moving_targets(warehouse, ["cold-e1"]) == []


def test_a_missing_model_says_what_to_do(warehouse):
    model_registry.upsert(warehouse, [_row("m")])
    with pytest.raises(model_registry.ModelNotRegistered) as raised:
        model_registry.read_row(warehouse, "ghost")
    assert "'ghost' is not in model_registry" in str(raised.value)
    assert "add it to [[models]] and materialise model_registry" in str(raised.value)
